# The VPC: the one given (vpc_id and its subnets), or a minimal new one with
# public subnets for the load balancer, private ones for the tasks and the
# database, a NAT gateway for the tasks' AWS API calls and an S3 gateway
# endpoint so recordings do not pass through the NAT.

locals {
  create_vpc = var.vpc_id == null

  vpc_id             = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  vpc_cidr           = local.create_vpc ? aws_vpc.this[0].cidr_block : data.aws_vpc.given[0].cidr_block
  public_subnet_ids  = local.create_vpc ? aws_subnet.public[*].id : var.public_subnet_ids
  private_subnet_ids = local.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids
  # The load balancer's addresses: the only peers the server believes about
  # the client's address, scheme and host (AUSCULT_TRUSTED_PROXIES).
  public_subnet_cidrs = local.create_vpc ? aws_subnet.public[*].cidr_block : [for s in data.aws_subnet.public : s.cidr_block]
  azs                 = slice(data.aws_availability_zones.available.names, 0, var.az_count)
}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394: only the first az_count zones (by name) are used, and zones AWS adds get later names, so the subnets never move
  state = "available"
}

data "aws_vpc" "given" {
  count = local.create_vpc ? 0 : 1
  id    = var.vpc_id
}

data "aws_subnet" "public" {
  for_each = local.create_vpc ? toset([]) : toset(var.public_subnet_ids)
  id       = each.value
}

resource "aws_vpc" "this" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = var.name }
}

# The default security group of the new VPC allows nothing.
resource "aws_default_security_group" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
}

resource "aws_subnet" "public" {
  count             = local.create_vpc ? var.az_count : 0
  vpc_id            = aws_vpc.this[0].id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  tags              = { Name = "${var.name}-public-${local.azs[count.index]}" }
}

resource "aws_subnet" "private" {
  count             = local.create_vpc ? var.az_count : 0
  vpc_id            = aws_vpc.this[0].id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, 8 + count.index)
  tags              = { Name = "${var.name}-private-${local.azs[count.index]}" }
}

resource "aws_internet_gateway" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = var.name }
}

resource "aws_eip" "nat" {
  count      = local.create_vpc ? 1 : 0
  domain     = "vpc"
  tags       = { Name = "${var.name}-nat" }
  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count         = local.create_vpc ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = { Name = var.name }
}

resource "aws_route_table" "public" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-public" }
}

resource "aws_route" "public_internet" {
  count                  = local.create_vpc ? 1 : 0
  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count          = local.create_vpc ? var.az_count : 0
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name}-private" }
}

resource "aws_route" "private_nat" {
  count                  = local.create_vpc ? 1 : 0
  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  count          = local.create_vpc ? var.az_count : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

resource "aws_vpc_endpoint" "s3" {
  count             = local.create_vpc ? 1 : 0
  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private[0].id]
  tags              = { Name = "${var.name}-s3" }
}

# Flow logs of the new VPC (rejected and accepted traffic), to CloudWatch.
resource "aws_flow_log" "this" {
  count                = local.create_vpc ? 1 : 0
  vpc_id               = aws_vpc.this[0].id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow[0].arn
  iam_role_arn         = aws_iam_role.flow_logs[0].arn
}

resource "aws_cloudwatch_log_group" "flow" {
  count             = local.create_vpc ? 1 : 0
  name              = "/vpc/${var.name}/flow"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = local.kms_key_arn
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count              = local.create_vpc ? 1 : 0
  name               = "${var.name}-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs" {
  count = local.create_vpc ? 1 : 0
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count  = local.create_vpc ? 1 : 0
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

# ---- Security groups ----------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "The Auscult load balancer: HTTPS (and HTTP, redirected) in, the tasks out"
  vpc_id      = local.vpc_id
}

resource "aws_security_group_rule" "alb_https_in" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  type              = "ingress"
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = var.allowed_ingress_cidrs
}

resource "aws_security_group_rule" "alb_http_in" {
  #checkov:skip=CKV_AWS_260: port 80 only answers a redirect to HTTPS (aws_lb_listener.http), so browsers typing the bare name land on TLS
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, redirected to HTTPS"
  type              = "ingress"
  protocol          = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_blocks       = var.allowed_ingress_cidrs
}

resource "aws_security_group_rule" "alb_to_tasks" {
  security_group_id        = aws_security_group.alb.id
  description              = "To the service port of the tasks"
  type                     = "egress"
  protocol                 = "tcp"
  from_port                = local.service_port
  to_port                  = local.service_port
  source_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "Auscult tasks: the service port from the load balancer, the admin port from the VPC"
  vpc_id      = local.vpc_id
}

resource "aws_security_group_rule" "tasks_from_alb" {
  security_group_id        = aws_security_group.tasks.id
  description              = "Service port from the load balancer"
  type                     = "ingress"
  protocol                 = "tcp"
  from_port                = local.service_port
  to_port                  = local.service_port
  source_security_group_id = aws_security_group.alb.id
}

resource "aws_security_group_rule" "tasks_admin_from_vpc" {
  security_group_id = aws_security_group.tasks.id
  description       = "Admin port (metrics, detailed readiness) from inside the VPC only"
  type              = "ingress"
  protocol          = "tcp"
  from_port         = local.admin_port
  to_port           = local.admin_port
  cidr_blocks       = [local.vpc_cidr]
}

resource "aws_security_group_rule" "tasks_https_out" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (ECR, S3, SQS, Secrets Manager, Logs, Transcribe) and hosted engines"
  type              = "egress"
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}

resource "aws_security_group_rule" "tasks_to_db" {
  security_group_id        = aws_security_group.tasks.id
  description              = "Postgres"
  type                     = "egress"
  protocol                 = "tcp"
  from_port                = 5432
  to_port                  = 5432
  source_security_group_id = aws_security_group.db.id
}

resource "aws_security_group_rule" "tasks_extra_out" {
  count             = length(var.task_extra_egress)
  security_group_id = aws_security_group.tasks.id
  description       = "Extra outbound rule ${count.index} (task_extra_egress)"
  type              = "egress"
  protocol          = "tcp"
  from_port         = var.task_extra_egress[count.index].port
  to_port           = var.task_extra_egress[count.index].port
  cidr_blocks       = var.task_extra_egress[count.index].cidr_blocks
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "Auscult database: Postgres from the tasks only"
  vpc_id      = local.vpc_id
}

resource "aws_security_group_rule" "db_from_tasks" {
  security_group_id        = aws_security_group.db.id
  description              = "Postgres from the tasks"
  type                     = "ingress"
  protocol                 = "tcp"
  from_port                = 5432
  to_port                  = 5432
  source_security_group_id = aws_security_group.tasks.id
}
