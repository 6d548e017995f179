# The KMS key, the recordings bucket and the RecordingFinalized queues.

locals {
  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn
  bucket_name    = coalesce(var.bucket_name, "${var.name}-recordings-${data.aws_caller_identity.current.account_id}-${var.region}")
  account_arn    = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

# ---- KMS ----------------------------------------------------------------------

data "aws_iam_policy_document" "kms" {
  # The account administers the key, and IAM policies (the task role's, the
  # execution role's) decide who uses it: S3, SQS, Secrets Manager and RDS
  # use it on behalf of those principals.
  #checkov:skip=CKV_AWS_109: a key policy's "*" resource is this key alone; the account root statement is what lets IAM policies grant use of it
  #checkov:skip=CKV_AWS_111: as above, the resource of a key policy statement is the key itself
  #checkov:skip=CKV_AWS_356: as above, "*" in a key policy means this key
  statement {
    sid       = "AccountAdministersAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.account_arn]
    }
  }
  # CloudWatch Logs encrypts the log groups of this deployment with it.
  statement {
    sid       = "CloudWatchLogsOfThisAccount"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "this" {
  count                   = local.create_kms_key ? 1 : 0
  description             = "${var.name}: recordings, events, secrets, logs and database"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  count         = local.create_kms_key ? 1 : 0
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}

# ---- S3 -----------------------------------------------------------------------

resource "aws_s3_bucket" "recordings" {
  #checkov:skip=CKV_AWS_18: server access logs need a separate log bucket the organisation usually runs already; CloudTrail data events are the audit trail for object access
  #checkov:skip=CKV_AWS_144: cross-region replication is a data residency decision (patient audio) for the operator, not a default
  #checkov:skip=CKV2_AWS_62: the server announces every stored recording on SQS itself (RecordingFinalized), after all its objects are complete
  bucket        = local.bucket_name
  force_destroy = var.bucket_force_destroy
}

resource "aws_s3_bucket_ownership_controls" "recordings" {
  bucket = aws_s3_bucket.recordings.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "recordings" {
  bucket                  = aws_s3_bucket.recordings.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "recordings" {
  bucket = aws_s3_bucket.recordings.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "recordings" {
  bucket = aws_s3_bucket.recordings.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  # A multipart upload cut off by a crash or a lost task is aborted, so its
  # parts stop costing.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  # A recording deleted through the API (or replaced by a fuller copy) stays
  # recoverable this long, then is gone.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.recordings]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyWithoutTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.recordings.arn, "${aws_s3_bucket.recordings.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "recordings" {
  bucket     = aws_s3_bucket.recordings.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.recordings]
}

# ---- SQS ----------------------------------------------------------------------

resource "aws_sqs_queue" "events_dlq" {
  count                     = var.events_enabled ? 1 : 0
  name                      = "${var.name}-recording-finalized-dlq"
  kms_master_key_id         = local.kms_key_arn
  message_retention_seconds = 1209600
}

resource "aws_sqs_queue" "events" {
  count                             = var.events_enabled ? 1 : 0
  name                              = "${var.name}-recording-finalized"
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  message_retention_seconds         = 345600
  visibility_timeout_seconds        = 60
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq[0].arn
    maxReceiveCount     = 5
  })
}
