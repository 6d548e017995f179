# The Application Load Balancer: TLS at 443, HTTP redirected to it, one
# target group on the service port checked on /ready, with stickiness for
# Socket.IO long-polling and a drain long enough for the server's own.

locals {
  service_port = 8080
  admin_port   = 9090
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_28: a WAF web ACL is the operator's (shared rules, cost); attach one with aws_wafv2_web_acl_association to this ARN
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = local.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == null ? [] : [var.alb_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }

  lifecycle {
    precondition {
      condition     = length(local.public_subnet_ids) >= 2 && length(local.private_subnet_ids) >= 2
      error_message = "With vpc_id, give at least two public_subnet_ids and two private_subnet_ids (two zones)."
    }
  }
}

resource "aws_lb_target_group" "this" {
  name                 = var.name
  port                 = local.service_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = local.vpc_id
  deregistration_delay = var.deregistration_delay_secs

  # /ready is 503 while starting, not ready or draining (SIGTERM).
  health_check {
    path                = "/ready"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  # Socket.IO long-polling: every request of one Engine.IO session must reach
  # the task that holds it (WebSockets need no stickiness).
  stickiness {
    type            = "lb_cookie"
    enabled         = true
    cookie_duration = var.stickiness_duration_secs
  }

  lifecycle {
    create_before_destroy = true
    precondition {
      condition     = var.deregistration_delay_secs >= var.shutdown_grace_secs + 5
      error_message = "deregistration_delay_secs must cover shutdown_grace_secs (AUSCULT_SHUTDOWN_GRACE_SECS) plus 5 s."
    }
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}
