//! What the module must have made, checked on what moto reports back
//! (tests/deploy/aws.py `read`) and, where moto keeps a setting without
//! reporting it, on terraform's saved plan.

use std::collections::BTreeSet;

use serde_json::{Value, json};

pub const IMAGE: &str = "registry.example.org/auscult:test";
const DATA_DIR: &str = "/var/lib/auscult";
/// The module's new VPC (vpc_cidr's default) and its two public /20s.
const VPC_CIDR: &str = "10.40.0.0/16";
const PUBLIC_CIDRS: &str = "10.40.0.0/20,10.40.16.0/20";

/// The test's terraform.tfvars: moto's endpoint and credentials, and what a
/// disposable deployment needs (no deletion protection, no final snapshot).
/// `transcribe-medical` among the engines, so the task role gets Transcribe.
pub fn test_variables(endpoint: &str, certificate_arn: &str) -> Value {
    json!({
        "region": "us-east-1",
        "name": "auscult-test",
        "image": IMAGE,
        "certificate_arn": certificate_arn,
        "allowed_hosts": ["auscult.example.org"],
        "engines": ["transcribe-medical"],
        "test_endpoint": endpoint,
        "test_access_key": "test",
        "test_secret_key": "test",
        // moto's ECS services never reach a steady state.
        "wait_for_steady_state": false,
        "alb_deletion_protection": false,
        "db_deletion_protection": false,
        "db_skip_final_snapshot": true,
        "bucket_force_destroy": true,
    })
}

fn planned<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["planned_values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .map(|r| &r["values"])
        .unwrap_or_else(|| panic!("{address} is not in the plan"))
}

/// moto takes these and does not report them back (describe_services has no
/// deploymentConfiguration; the ALB's scheme is null), so the plan says.
pub fn check_plan(plan: &Value) {
    let service = planned(plan, "aws_ecs_service.server");
    assert_eq!(service["launch_type"], "FARGATE");
    assert_eq!(
        service["deployment_circuit_breaker"],
        json!([{"enable": true, "rollback": true}])
    );
    // New tasks start before the old ones drain: sessions keep being served.
    assert_eq!(service["deployment_minimum_healthy_percent"], 100);
    assert_eq!(service["deployment_maximum_percent"], 200);
    assert_eq!(service["health_check_grace_period_seconds"], 120);
    assert_eq!(planned(plan, "aws_lb.this")["internal"], false);
    let db = planned(plan, "aws_db_instance.this");
    assert_eq!(db["manage_master_user_password"], true);
    assert_eq!(db["multi_az"], true);
    assert_eq!(db["performance_insights_enabled"], true);
}

fn env_of(container: &Value) -> Vec<(String, String)> {
    container["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn check_service(facts: &Value) {
    let out = &facts["outputs"];
    let service = &facts["service"];
    assert_eq!(service["launch_type"], "FARGATE");
    assert_eq!(service["desired_count"], 2);
    assert_eq!(
        service["network"]["awsvpcConfiguration"]["assignPublicIp"],
        "DISABLED"
    );
    let task = &facts["task_definition"];
    assert_eq!(task["requires_compatibilities"], json!(["FARGATE"]));
    assert_eq!(task["network_mode"], "awsvpc");
    assert_eq!(task["ephemeral_storage"]["sizeInGiB"], 30);
    let containers = task["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"], IMAGE);
    assert_eq!(c["stopTimeout"], 30);
    assert_eq!(c["user"], "10001:10001");
    assert_eq!(c["readonlyRootFilesystem"], true);
    let ports: Vec<&Value> = c["portMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["containerPort"])
        .collect();
    assert_eq!(ports, [&json!(8080), &json!(9090)]);
    assert_eq!(
        c["healthCheck"]["command"],
        json!(["CMD", "/opt/auscult/auscult", "health"])
    );
    assert_eq!(
        c["mountPoints"],
        json!([{"sourceVolume": "data", "containerPath": DATA_DIR, "readOnly": false}])
    );
    assert_eq!(c["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(
        c["logConfiguration"]["options"]["awslogs-group"],
        out["log_group"]
    );
    assert_eq!(facts["log_group"]["retentionInDays"], 365);
    assert_eq!(facts["log_group"]["kmsKeyId"], out["kms_key_arn"]);

    let env = env_of(c);
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AUSCULT_ADMIN_LISTEN",
            "AUSCULT_ALLOWED_HOSTS",
            "AUSCULT_DATA_DIR",
            "AUSCULT_ENGINE",
            "AUSCULT_ENGINES",
            "AUSCULT_EVENTS_SQS_REGION",
            "AUSCULT_EVENTS_SQS_URL",
            "AUSCULT_LISTEN",
            "AUSCULT_LOG_FORMAT",
            "AUSCULT_MAX_SESSIONS",
            "AUSCULT_PING_INTERVAL_SECS",
            "AUSCULT_S3_KMS_KEY_ID",
            "AUSCULT_S3_REGION",
            "AUSCULT_S3_SSE",
            "AUSCULT_SHUTDOWN_GRACE_SECS",
            "AUSCULT_STORAGE_URL",
            "AUSCULT_TRANSCRIBE_REGION",
            "AUSCULT_TRUSTED_PROXIES",
        ]
    );
    let value = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    assert_eq!(value("AUSCULT_LISTEN"), "0.0.0.0:8080");
    assert_eq!(value("AUSCULT_ADMIN_LISTEN"), "0.0.0.0:9090");
    assert_eq!(value("AUSCULT_DATA_DIR"), DATA_DIR);
    assert_eq!(value("AUSCULT_SHUTDOWN_GRACE_SECS"), "25");
    assert_eq!(
        value("AUSCULT_STORAGE_URL"),
        format!("s3://{}/auscult", out["bucket"].as_str().unwrap())
    );
    assert_eq!(value("AUSCULT_S3_SSE"), "aws:kms");
    assert_eq!(value("AUSCULT_S3_KMS_KEY_ID"), out["kms_key_arn"]);
    assert_eq!(value("AUSCULT_EVENTS_SQS_URL"), out["queue_url"]);
    assert_eq!(value("AUSCULT_TRUSTED_PROXIES"), PUBLIC_CIDRS);
    assert_eq!(value("AUSCULT_ALLOWED_HOSTS"), "auscult.example.org");
    assert_eq!(value("AUSCULT_ENGINES"), "transcribe-medical");

    let secrets: Vec<(&str, &str)> = c["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["valueFrom"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        secrets,
        [
            (
                "AUSCULT_API_TOKENS",
                out["api_tokens_secret_arn"].as_str().unwrap()
            ),
            (
                "AUSCULT_DATABASE_URL",
                out["database_url_secret_arn"].as_str().unwrap()
            ),
        ]
    );

    let scaling = &facts["scaling"];
    assert_eq!(scaling["targets"], json!([{"min": 2, "max": 10}]));
    let metrics: BTreeSet<(String, i64)> = scaling["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metric"].as_str().unwrap().to_owned(),
                p["target"].as_f64().unwrap() as i64,
            )
        })
        .collect();
    assert_eq!(
        metrics,
        BTreeSet::from([
            ("ALBRequestCountPerTarget".to_owned(), 6000),
            ("ECSServiceAverageCPUUtilization".to_owned(), 60)
        ])
    );
}

pub fn check_load_balancer(facts: &Value) {
    let alb = &facts["alb"];
    let attributes = &alb["attributes"];
    // Far above the 25 s WebSocket / Engine.IO pings.
    assert_eq!(attributes["idle_timeout.timeout_seconds"], "120");
    assert_eq!(
        attributes["routing.http.drop_invalid_header_fields.enabled"],
        "true"
    );
    let groups = alb["target_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let tg = &groups[0];
    assert_eq!(
        (tg["port"].as_i64(), tg["protocol"].as_str()),
        (Some(8080), Some("HTTP"))
    );
    assert_eq!(tg["target_type"], "ip");
    assert_eq!(tg["health_check_path"], "/ready");
    assert_eq!(tg["matcher"]["HttpCode"], "200");
    let tga = &tg["attributes"];
    assert_eq!(tga["stickiness.enabled"], "true");
    assert_eq!(tga["stickiness.type"], "lb_cookie");
    assert_eq!(tga["stickiness.lb_cookie.duration_seconds"], "86400");
    let delay: u64 = tga["deregistration_delay.timeout_seconds"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        delay >= 25 + 5,
        "the drain ({delay} s) covers AUSCULT_SHUTDOWN_GRACE_SECS"
    );
    assert_eq!(
        facts["service"]["load_balancers"][0]["targetGroupArn"],
        tg["arn"]
    );
    assert_eq!(facts["service"]["load_balancers"][0]["containerPort"], 8080);

    let listeners = alb["listeners"].as_array().unwrap();
    let by_port = |port: i64| {
        listeners
            .iter()
            .find(|l| l["port"] == port)
            .unwrap_or_else(|| panic!("no listener on {port}"))
    };
    let https = by_port(443);
    assert_eq!(https["protocol"], "HTTPS");
    assert_eq!(https["ssl_policy"], "ELBSecurityPolicy-TLS13-1-2-2021-06");
    assert_eq!(https["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(https["actions"][0]["Type"], "forward");
    assert_eq!(https["actions"][0]["TargetGroupArn"], tg["arn"]);
    let http = by_port(80);
    assert_eq!(http["protocol"], "HTTP");
    let redirect = &http["actions"][0];
    assert_eq!(redirect["Type"], "redirect");
    assert_eq!(redirect["RedirectConfig"]["Protocol"], "HTTPS");
    assert_eq!(redirect["RedirectConfig"]["Port"], "443");
    assert_eq!(redirect["RedirectConfig"]["StatusCode"], "HTTP_301");
    assert_eq!(listeners.len(), 2);

    // The tasks take the service port from the ALB only and the admin port
    // from the VPC only.
    let alb_groups = alb["security_groups"].as_array().unwrap();
    let tasks = facts["ingress"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let rule = |port: i64| {
        tasks
            .iter()
            .find(|r| r["port"] == port)
            .unwrap_or_else(|| panic!("no ingress on {port}"))
    };
    assert_eq!(rule(8080)["cidrs"], json!([]));
    assert_eq!(rule(8080)["groups"], json!(alb_groups));
    assert_eq!(rule(9090)["cidrs"], json!([VPC_CIDR]));
    assert_eq!(rule(9090)["groups"], json!([]));
}

pub fn check_database(facts: &Value) {
    let db = &facts["db"];
    let key = &facts["outputs"]["kms_key_arn"];
    assert_eq!(db["engine"], "postgres");
    assert_eq!(db["storage_encrypted"], true);
    assert_eq!(&db["kms_key_id"], key);
    assert_eq!(db["publicly_accessible"], false);
    assert_eq!(db["parameters"]["rds.force_ssl"], "1", "TLS required");
    // The master password is RDS's own, in Secrets Manager under the key.
    assert_eq!(
        db["master_user_secret"]["SecretArn"],
        facts["outputs"]["database_master_secret_arn"]
    );
    assert_eq!(&db["master_user_secret"]["KmsKeyId"], key);
    // Reachable from the tasks' security group only.
    assert_eq!(
        facts["ingress"]["db"],
        json!([{"port": 5432, "to_port": 5432, "cidrs": [], "groups": [facts["ingress"]["tasks_group"]]}])
    );
}

pub fn check_storage(facts: &Value) {
    let key = &facts["outputs"]["kms_key_arn"];
    let bucket = &facts["bucket"];
    assert_eq!(bucket["encryption"]["SSEAlgorithm"], "aws:kms");
    assert_eq!(&bucket["encryption"]["KMSMasterKeyID"], key);
    assert_eq!(
        bucket["public_access_block"],
        json!({"BlockPublicAcls": true, "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true})
    );
    assert_eq!(bucket["versioning"], "Enabled");
    let aborts = bucket["lifecycle"].as_array().unwrap().iter().any(|r| {
        r["Status"] == "Enabled"
            && r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
                .as_i64()
                .is_some()
    });
    assert!(
        aborts,
        "no rule aborts incomplete multipart uploads: {}",
        bucket["lifecycle"]
    );
    let tls_only = bucket["policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| {
            s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        });
    assert!(
        tls_only,
        "the bucket policy does not refuse plain HTTP: {}",
        bucket["policy"]
    );

    let queue = &facts["queue"];
    let dlq = &facts["dead_letter_queue"];
    assert_eq!(&queue["KmsMasterKeyId"], key);
    assert_eq!(&dlq["KmsMasterKeyId"], key);
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        dlq["QueueArn"]
    );
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"], 5);
}

/// Every (action, resource) an identity policy allows.
fn grants(policy: &Value) -> BTreeSet<(String, String)> {
    let list = |v: &Value| match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
        other => vec![other.as_str().unwrap().to_owned()],
    };
    let mut out = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        for action in list(&statement["Action"]) {
            for resource in list(&statement["Resource"]) {
                out.insert((action.clone(), resource));
            }
        }
    }
    out
}

/// The task role holds exactly the README's permissions (and Transcribe,
/// which the test deployment enables).
pub fn check_roles(facts: &Value) {
    let out = &facts["outputs"];
    let bucket = format!("arn:aws:s3:::{}", out["bucket"].as_str().unwrap());
    let key = out["kms_key_arn"].as_str().unwrap();
    let queue_arn = facts["queue"]["QueueArn"].as_str().unwrap();
    let role = &facts["task_role"];
    assert_eq!(
        role["attached"],
        json!([]),
        "no managed policies on the task role"
    );
    let inline = role["inline"].as_object().unwrap();
    assert_eq!(inline.len(), 1);
    let policy = inline.values().next().unwrap();
    let pair = |a: &str, r: &str| (a.to_owned(), r.to_owned());
    let objects = format!("{bucket}/auscult/*");
    let expected = BTreeSet::from([
        pair("s3:PutObject", &objects),
        pair("s3:GetObject", &objects),
        pair("s3:DeleteObject", &objects),
        pair("s3:AbortMultipartUpload", &objects),
        pair("s3:ListBucket", &bucket),
        pair("kms:GenerateDataKey", key),
        pair("kms:Decrypt", key),
        pair("sqs:SendMessage", queue_arn),
        pair("transcribe:StartStreamTranscription", "*"),
        pair("transcribe:StartMedicalStreamTranscription", "*"),
    ]);
    assert_eq!(grants(policy), expected);
    let list = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "s3:ListBucket")
        .unwrap();
    assert_eq!(
        list["Condition"],
        json!({"StringLike": {"s3:prefix": "auscult/*"}})
    );

    let execution = &facts["execution_role"];
    assert_eq!(
        execution["attached"],
        json!(["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"])
    );
    let reads: BTreeSet<(String, String)> = execution["inline"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(grants)
        .collect();
    assert_eq!(
        reads,
        BTreeSet::from([
            pair(
                "secretsmanager:GetSecretValue",
                out["api_tokens_secret_arn"].as_str().unwrap()
            ),
            pair(
                "secretsmanager:GetSecretValue",
                out["database_url_secret_arn"].as_str().unwrap()
            ),
            pair("kms:Decrypt", key),
        ])
    );
}
