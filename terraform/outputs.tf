output "alb_dns_name" {
  description = "The load balancer's DNS name: point the service's name (a CNAME or an alias record) at it."
  value       = aws_lb.this.dns_name
}

output "bucket" {
  description = "The recordings bucket."
  value       = aws_s3_bucket.recordings.id
}

output "queue_url" {
  description = "The RecordingFinalized queue (null without events)."
  value       = var.events_enabled ? aws_sqs_queue.events[0].url : null
}

output "dead_letter_queue_url" {
  description = "Its dead-letter queue."
  value       = var.events_enabled ? aws_sqs_queue.events_dlq[0].url : null
}

output "log_group" {
  description = "The server's CloudWatch log group."
  value       = aws_cloudwatch_log_group.server.name
}

output "cluster" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service" {
  description = "The ECS service."
  value       = aws_ecs_service.server.name
}

output "database_endpoint" {
  description = "The database's host:port (for the URL in the database-url secret)."
  value       = aws_db_instance.this.endpoint
}

output "database_master_secret_arn" {
  description = "The RDS-managed secret with the master user's password (to create the server's own role)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "database_url_secret_arn" {
  description = "The secret to put AUSCULT_DATABASE_URL in."
  value       = local.database_url_secret_arn
}

output "api_tokens_secret_arn" {
  description = "The secret to put AUSCULT_API_TOKENS in."
  value       = local.api_tokens_secret_arn
}

output "kms_key_arn" {
  description = "The key of the bucket, queues, secrets, logs and database."
  value       = local.kms_key_arn
}

output "database_identifier" {
  description = "The RDS instance's identifier."
  value       = aws_db_instance.this.identifier
}
