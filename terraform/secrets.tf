# The server's secrets, from Secrets Manager into the container's environment.
# The module makes the secrets (encrypted with the key) but never their
# values, so no credential passes through terraform's state: put them in
# after the first apply (README "Deployment"), or give existing secrets.

locals {
  riva_enabled = contains(concat([var.engine], var.engines), "riva")
  transcribe_enabled = length(setintersection(
    toset(concat([var.engine], var.engines)), toset(["transcribe", "transcribe-medical"])
  )) > 0

  database_url_secret_arn = coalesce(var.database_url_secret_arn, try(aws_secretsmanager_secret.database_url[0].arn, null))
  api_tokens_secret_arn   = coalesce(var.api_tokens_secret_arn, try(aws_secretsmanager_secret.api_tokens[0].arn, null))
  riva_api_key_secret_arn = local.riva_enabled ? coalesce(var.riva_api_key_secret_arn, try(aws_secretsmanager_secret.riva_api_key[0].arn, null)) : null

  # Container environment name => secret ARN.
  container_secrets = merge(
    {
      AUSCULT_DATABASE_URL = local.database_url_secret_arn
      AUSCULT_API_TOKENS   = local.api_tokens_secret_arn
    },
    local.riva_enabled ? { AUSCULT_RIVA_API_KEY = local.riva_api_key_secret_arn } : {},
  )
}

resource "aws_secretsmanager_secret" "database_url" {
  #checkov:skip=CKV2_AWS_57: the URL holds the server's own database role, rotated by the operator with the role (the master password is RDS's, which rotates it)
  count                   = var.database_url_secret_arn == null ? 1 : 0
  name                    = "${var.name}/database-url"
  description             = "AUSCULT_DATABASE_URL: the Postgres URL of the server role, with sslmode=require (README Deployment)"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret" "api_tokens" {
  #checkov:skip=CKV2_AWS_57: bearer tokens are shared with the clients that hold them; rotating them is a change on both sides, made by the operator
  count                   = var.api_tokens_secret_arn == null ? 1 : 0
  name                    = "${var.name}/api-tokens"
  description             = "AUSCULT_API_TOKENS: user:token,user:token"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret" "riva_api_key" {
  #checkov:skip=CKV2_AWS_57: the key is issued by NVIDIA; it is rotated there, then put here
  count                   = local.riva_enabled && var.riva_api_key_secret_arn == null ? 1 : 0
  name                    = "${var.name}/riva-api-key"
  description             = "AUSCULT_RIVA_API_KEY: the hosted Riva endpoint's API key"
  kms_key_id              = local.kms_key_arn
  recovery_window_in_days = 7
}
