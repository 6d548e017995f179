"""What tests/deploy.rs asks moto, with boto3 (which moto brings).

    python3 aws.py ENDPOINT certificate DOMAIN   # prints a new ACM certificate's ARN
    python3 aws.py ENDPOINT read OUTPUTS.json    # prints what was deployed, as JSON

`read` takes `terraform output -json` and describes the deployed resources
as AWS reports them (never as terraform's state says), for the test to
assert on.
"""

import json
import sys
from urllib.parse import unquote

import boto3

REGION = "us-east-1"


def client(endpoint, service):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def certificate(endpoint, domain):
    print(client(endpoint, "acm").request_certificate(DomainName=domain)["CertificateArn"])


def ecs_facts(endpoint, cluster, service_name):
    ecs = client(endpoint, "ecs")
    service = ecs.describe_services(cluster=cluster, services=[service_name])["services"][0]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    return {
        "service": {
            "launch_type": service.get("launchType"),
            "desired_count": service.get("desiredCount"),
            "load_balancers": service.get("loadBalancers"),
            "deployment_configuration": service.get("deploymentConfiguration"),
            "network": service.get("networkConfiguration"),
        },
        "task_definition": {
            "cpu": task.get("cpu"),
            "memory": task.get("memory"),
            "requires_compatibilities": task.get("requiresCompatibilities"),
            "network_mode": task.get("networkMode"),
            "task_role_arn": task.get("taskRoleArn"),
            "execution_role_arn": task.get("executionRoleArn"),
            "volumes": task.get("volumes"),
            "ephemeral_storage": task.get("ephemeralStorage"),
            "containers": task["containerDefinitions"],
        },
    }


def alb_facts(endpoint, dns_name):
    elb = client(endpoint, "elbv2")
    lb = next(l for l in elb.describe_load_balancers()["LoadBalancers"] if l["DNSName"] == dns_name)
    attrs = elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    return {
        "scheme": lb.get("Scheme"),
        "security_groups": lb.get("SecurityGroups"),
        "attributes": {a["Key"]: a["Value"] for a in attrs},
        "listeners": [
            {
                "port": l["Port"],
                "protocol": l["Protocol"],
                "ssl_policy": l.get("SslPolicy"),
                "certificates": [c["CertificateArn"] for c in l.get("Certificates", [])],
                "actions": l["DefaultActions"],
            }
            for l in listeners
        ],
        "target_groups": [
            {
                "arn": g["TargetGroupArn"],
                "port": g["Port"],
                "protocol": g["Protocol"],
                "target_type": g.get("TargetType"),
                "health_check_path": g.get("HealthCheckPath"),
                "matcher": g.get("Matcher"),
                "attributes": {
                    a["Key"]: a["Value"]
                    for a in elb.describe_target_group_attributes(TargetGroupArn=g["TargetGroupArn"])["Attributes"]
                },
            }
            for g in groups
        ],
    }


def db_facts(endpoint, identifier):
    rds = client(endpoint, "rds")
    db = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    group = db["DBParameterGroups"][0]["DBParameterGroupName"]
    params = rds.describe_db_parameters(DBParameterGroupName=group, Source="user")["Parameters"]
    return {
        "engine": db.get("Engine"),
        "storage_encrypted": db.get("StorageEncrypted"),
        "kms_key_id": db.get("KmsKeyId"),
        "publicly_accessible": db.get("PubliclyAccessible"),
        "master_user_secret": db.get("MasterUserSecret"),
        "security_groups": [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])],
        "parameters": {p["ParameterName"]: p.get("ParameterValue") for p in params},
    }


def bucket_facts(endpoint, bucket):
    s3 = client(endpoint, "s3")
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    return {
        "encryption": sse["ApplyServerSideEncryptionByDefault"],
        "public_access_block": s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
        "policy": json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
    }


def queue_facts(endpoint, url):
    sqs = client(endpoint, "sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if "RedrivePolicy" in attrs:
        attrs["RedrivePolicy"] = json.loads(attrs["RedrivePolicy"])
    return attrs


def role_policies(endpoint, role_arn):
    iam = client(endpoint, "iam")
    role = role_arn.rsplit("/", 1)[1]
    inline = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        inline[name] = json.loads(unquote(document)) if isinstance(document, str) else document
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    return {"inline": inline, "attached": attached}


def ingress(endpoint, group_id):
    """A security group's inbound rules as (port, sources) pairs."""
    group = client(endpoint, "ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return [
        {
            "port": p.get("FromPort"),
            "to_port": p.get("ToPort"),
            "cidrs": sorted(r["CidrIp"] for r in p.get("IpRanges", [])),
            "groups": sorted(g["GroupId"] for g in p.get("UserIdGroupPairs", [])),
        }
        for p in group["IpPermissions"]
    ]


def scaling_facts(endpoint, cluster, service_name):
    aas = client(endpoint, "application-autoscaling")
    resource = f"service/{cluster}/{service_name}"
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])["ScalableTargets"]
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)["ScalingPolicies"]
    return {
        "targets": [{"min": t["MinCapacity"], "max": t["MaxCapacity"]} for t in targets],
        "policies": [
            {
                "type": p["PolicyType"],
                "metric": p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
                    "PredefinedMetricType"
                ],
                "target": p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
            }
            for p in policies
        ],
    }


def read(endpoint, outputs_file):
    with open(outputs_file) as f:
        out = {k: v["value"] for k, v in json.load(f).items()}
    facts = ecs_facts(endpoint, out["cluster"], out["service"])
    task = facts["task_definition"]
    facts["alb"] = alb_facts(endpoint, out["alb_dns_name"])
    facts["db"] = db_facts(endpoint, out["database_identifier"])
    facts["bucket"] = bucket_facts(endpoint, out["bucket"])
    facts["queue"] = queue_facts(endpoint, out["queue_url"])
    facts["dead_letter_queue"] = queue_facts(endpoint, out["dead_letter_queue_url"])
    facts["task_role"] = role_policies(endpoint, task["task_role_arn"])
    facts["execution_role"] = role_policies(endpoint, task["execution_role_arn"])
    tasks_group = facts["service"]["network"]["awsvpcConfiguration"]["securityGroups"][0]
    facts["ingress"] = {
        "tasks_group": tasks_group,
        "tasks": ingress(endpoint, tasks_group),
        "db": ingress(endpoint, facts["db"]["security_groups"][0]),
    }
    facts["scaling"] = scaling_facts(endpoint, out["cluster"], out["service"])
    logs = client(endpoint, "logs").describe_log_groups(logGroupNamePrefix=out["log_group"])["logGroups"]
    facts["log_group"] = next(g for g in logs if g["logGroupName"] == out["log_group"])
    facts["outputs"] = out
    print(json.dumps(facts, default=str, indent=1))


if __name__ == "__main__":
    endpoint, command, arg = sys.argv[1:4]
    {"certificate": certificate, "read": read}[command](endpoint, arg)
