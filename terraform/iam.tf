# The task role (what the server itself may do: exactly the README's list)
# and the execution role (what ECS does to start it: pull the image, write
# its logs, read its secrets).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# ---- Task role ------------------------------------------------------------------

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "RecordingsUnderThePrefix"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.recordings.arn}/${var.s3_prefix}/*"]
  }
  # Finding a lost instance's chunks.
  statement {
    sid       = "ListThePrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.recordings.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.s3_prefix}/*"]
    }
  }
  # SSE-KMS objects (multipart uploads need Decrypt too) and the encrypted queue.
  statement {
    sid       = "TheKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
  dynamic "statement" {
    for_each = var.events_enabled ? [1] : []
    content {
      sid       = "RecordingFinalizedEvents"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.events[0].arn]
    }
  }
  # Transcribe streaming has no resource-level permissions.
  dynamic "statement" {
    for_each = local.transcribe_enabled ? [1] : []
    content {
      sid       = "TranscribeStreaming"
      actions   = ["transcribe:StartStreamTranscription", "transcribe:StartMedicalStreamTranscription"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "auscult-server"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---- Execution role ---------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# Image pull (ECR) and the awslogs driver.
resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    sid       = "TheServersSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(local.container_secrets)
  }
  statement {
    sid       = "DecryptThem"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  name   = "read-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}
