# The ECS cluster, the server's task definition and its Fargate service with
# autoscaling.

locals {
  data_dir  = "/var/lib/auscult"
  container = "auscult"

  # Every AUSCULT_* setting a deployment needs; var.environment adds to (or
  # overrides) them.
  environment = merge(
    {
      AUSCULT_LISTEN              = "0.0.0.0:${local.service_port}"
      AUSCULT_ADMIN_LISTEN        = "0.0.0.0:${local.admin_port}"
      AUSCULT_DATA_DIR            = local.data_dir
      AUSCULT_LOG_FORMAT          = "json"
      AUSCULT_STORAGE_URL         = "s3://${aws_s3_bucket.recordings.id}/${var.s3_prefix}"
      AUSCULT_S3_REGION           = var.region
      AUSCULT_S3_SSE              = "aws:kms"
      AUSCULT_S3_KMS_KEY_ID       = local.kms_key_arn
      AUSCULT_ENGINE              = var.engine
      AUSCULT_MAX_SESSIONS        = tostring(var.max_sessions)
      AUSCULT_SHUTDOWN_GRACE_SECS = tostring(var.shutdown_grace_secs)
      AUSCULT_PING_INTERVAL_SECS  = "25"
      AUSCULT_TRUSTED_PROXIES     = join(",", local.public_subnet_cidrs)
    },
    length(var.engines) > 0 ? { AUSCULT_ENGINES = join(",", var.engines) } : {},
    length(var.allowed_hosts) > 0 ? { AUSCULT_ALLOWED_HOSTS = join(",", var.allowed_hosts) } : {},
    var.events_enabled ? {
      AUSCULT_EVENTS_SQS_URL    = aws_sqs_queue.events[0].url
      AUSCULT_EVENTS_SQS_REGION = var.region
    } : {},
    local.transcribe_enabled ? { AUSCULT_TRANSCRIBE_REGION = var.region } : {},
    local.riva_enabled && var.riva_url != null ? { AUSCULT_RIVA_URL = var.riva_url } : {},
    var.environment,
  )
}

resource "aws_cloudwatch_log_group" "server" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_task_definition" "server" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # The data dir (spools, the instance lock) on the task's ephemeral storage:
  # a lost task costs at most one chunk interval (AUSCULT_CHUNK_FLUSH_SECS),
  # which another instance recovers from S3.
  ephemeral_storage {
    size_in_gib = var.ephemeral_storage_gib
  }
  volume {
    name = "data"
  }

  container_definitions = jsonencode([{
    name      = local.container
    image     = var.image
    essential = true
    user      = "10001:10001"
    portMappings = [
      { name = "http", containerPort = local.service_port, protocol = "tcp" },
      { name = "admin", containerPort = local.admin_port, protocol = "tcp" },
    ]
    environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    secrets     = [for k in sort(keys(local.container_secrets)) : { name = k, valueFrom = local.container_secrets[k] }]
    mountPoints = [{ sourceVolume = "data", containerPath = local.data_dir, readOnly = false }]
    # Only the data dir is written.
    readonlyRootFilesystem = true
    # SIGTERM, then the server drains within AUSCULT_SHUTDOWN_GRACE_SECS.
    stopTimeout = 30
    ulimits     = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
    healthCheck = {
      command     = ["CMD", "/opt/auscult/auscult", "health"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.server.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "server"
      }
    }
  }])
}

resource "aws_ecs_service" "server" {
  name                    = var.name
  cluster                 = aws_ecs_cluster.this.id
  task_definition         = aws_ecs_task_definition.server.arn
  desired_count           = var.desired_count
  launch_type             = "FARGATE"
  platform_version        = "LATEST"
  propagate_tags          = "SERVICE"
  enable_ecs_managed_tags = true
  wait_for_steady_state   = var.wait_for_steady_state

  # A deploy starts the new tasks before draining the old ones, so the
  # service never has fewer ready tasks than it wants; a deploy whose tasks
  # do not become healthy is rolled back.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  # Loading and warming the model happens before the listener opens.
  health_check_grace_period_seconds = 120

  network_configuration {
    subnets          = local.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container
    container_port   = local.service_port
  }

  lifecycle {
    # Autoscaling owns the count after the first apply.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_iam_role_policy.task, aws_iam_role_policy.execution_secrets]
}

# ---- Autoscaling ------------------------------------------------------------------

resource "aws_appautoscaling_target" "server" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.server.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.server.service_namespace
  resource_id        = aws_appautoscaling_target.server.resource_id
  scalable_dimension = aws_appautoscaling_target.server.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    # Scale-in drains a task (deregistration_delay_secs), so not too eagerly.
    scale_in_cooldown = 600
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.server.service_namespace
  resource_id        = aws_appautoscaling_target.server.resource_id
  scalable_dimension = aws_appautoscaling_target.server.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 600
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}
