provider "aws" {
  region = var.region

  # Testing only: tests/deploy.rs points every service at a local AWS
  # emulator with fixed credentials. In production these stay null, and the
  # provider uses AWS's endpoints and the default credential chain.
  access_key                  = var.test_access_key
  secret_key                  = var.test_secret_key
  skip_credentials_validation = var.test_endpoint != null
  skip_metadata_api_check     = var.test_endpoint != null
  s3_use_path_style           = var.test_endpoint != null

  dynamic "endpoints" {
    for_each = var.test_endpoint == null ? [] : [var.test_endpoint]
    content {
      applicationautoscaling = endpoints.value
      cloudwatch             = endpoints.value
      ec2                    = endpoints.value
      ecs                    = endpoints.value
      elbv2                  = endpoints.value
      iam                    = endpoints.value
      kms                    = endpoints.value
      logs                   = endpoints.value
      rds                    = endpoints.value
      s3                     = endpoints.value
      secretsmanager         = endpoints.value
      sqs                    = endpoints.value
      sts                    = endpoints.value
    }
  }

  default_tags {
    tags = merge({ Application = "auscult", Deployment = var.name }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}
