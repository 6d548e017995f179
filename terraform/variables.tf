# ---- What and where -------------------------------------------------------

variable "name" {
  description = "Prefix of every resource's name (letters, digits, hyphens)."
  type        = string
  default     = "auscult"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name: 2-21 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "tags" {
  description = "Tags on every resource (besides Application and Deployment)."
  type        = map(string)
  default     = {}
}

variable "image" {
  description = "The server image (built from the repository's Dockerfile), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/auscult:1.4.0. Prefer an immutable tag or a digest."
  type        = string
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: the architecture the image was built for."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

# ---- Networking -----------------------------------------------------------

variable "vpc_id" {
  description = "An existing VPC; null makes a minimal one (public subnets for the load balancer, private ones for the tasks and the database, one NAT gateway)."
  type        = string
  default     = null
}

variable "public_subnet_ids" {
  description = "With vpc_id: subnets of the load balancer (at least two zones)."
  type        = list(string)
  default     = []
}

variable "private_subnet_ids" {
  description = "With vpc_id: subnets of the tasks and the database (at least two zones), with a route to AWS's APIs (NAT or endpoints)."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "Without vpc_id: the new VPC's address block (split into /20 subnets)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Without vpc_id: availability zones to spread the subnets over."
  type        = number
  default     = 2
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 4
    error_message = "az_count: 2 to 4 (the load balancer and the database need two zones)."
  }
}

variable "flow_log_retention_days" {
  description = "Without vpc_id: retention of the new VPC's flow logs."
  type        = number
  default     = 365
}

variable "task_extra_egress" {
  description = "Extra outbound rules of the tasks besides HTTPS to anywhere and Postgres to the database, e.g. a Riva server on 50051: [{ port = 50051, cidr_blocks = [\"10.0.8.0/24\"] }]."
  type = list(object({
    port        = number
    cidr_blocks = list(string)
  }))
  default = []
}

# ---- Load balancer --------------------------------------------------------

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "allowed_ingress_cidrs" {
  description = "Who may reach the load balancer on 443 (and 80, which only redirects)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "ssl_policy" {
  description = "The HTTPS listener's security policy."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_idle_timeout" {
  description = "Seconds a connection may be silent: well above the server's 25 s WebSocket and Engine.IO pings (AUSCULT_PING_INTERVAL_SECS)."
  type        = number
  default     = 120
  validation {
    condition     = var.alb_idle_timeout >= 60
    error_message = "alb_idle_timeout: at least 60 s, so a 25 s ping interval keeps every connection open."
  }
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the load balancer (turn off before a destroy)."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "An existing bucket (with the ELB log delivery policy) for the load balancer's access logs; null: no access logs."
  type        = string
  default     = null
}

variable "stickiness_duration_secs" {
  description = "Lifetime of the load balancer's stickiness cookie (Socket.IO long-polling must reach one task): longer than a recording (AUSCULT_MAX_DURATION_SECS)."
  type        = number
  default     = 86400
}

variable "deregistration_delay_secs" {
  description = "How long a stopping task keeps its open connections before ECS sends SIGTERM: at least AUSCULT_SHUTDOWN_GRACE_SECS + 5. Longer lets more recordings end on their own during a deploy or scale-in (the longest recording, AUSCULT_MAX_DURATION_SECS, lets all of them), at the price of slower deploys."
  type        = number
  default     = 300
}

# ---- Service --------------------------------------------------------------

variable "cpu" {
  description = "Task CPU units (1024 = one vCPU)."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 4096
}

variable "ephemeral_storage_gib" {
  description = "Task disk (21-200 GiB) for the data dir: each live session's spool (16 kHz 16-bit: about 115 MB an hour)."
  type        = number
  default     = 30
  validation {
    condition     = var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200
    error_message = "ephemeral_storage_gib: 21 to 200."
  }
}

variable "desired_count" {
  description = "Tasks at the first apply (autoscaling moves it afterwards between min_count and max_count; 0 while the secrets have no values yet)."
  type        = number
  default     = 2
}

variable "min_count" {
  description = "Fewest tasks autoscaling keeps."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most tasks autoscaling starts."
  type        = number
  default     = 10
}

variable "cpu_target_percent" {
  description = "Autoscaling keeps the service's average CPU near this."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "Autoscaling keeps ALB requests per task per minute near this (WebSocket sessions are one request each; Socket.IO long-polling is many)."
  type        = number
  default     = 6000
}

variable "wait_for_steady_state" {
  description = "terraform apply waits until the service's deployment is complete (and fails when the circuit breaker rolls it back)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the server's logs (CloudWatch)."
  type        = number
  default     = 365
}

# ---- The server's settings ------------------------------------------------

variable "shutdown_grace_secs" {
  description = "AUSCULT_SHUTDOWN_GRACE_SECS: the SIGTERM drain deadline, within the task's 30 s stopTimeout."
  type        = number
  default     = 25
  validation {
    condition     = var.shutdown_grace_secs >= 1 && var.shutdown_grace_secs <= 28
    error_message = "shutdown_grace_secs: 1 to 28 (ECS kills the container 30 s after SIGTERM)."
  }
}

variable "max_sessions" {
  description = "AUSCULT_MAX_SESSIONS per task (see the README's load figures: 1,000 measured on 2 cores without speech recognition; the embedded Whisper engine admits AUSCULT_WHISPER_MAX_STREAMS)."
  type        = number
  default     = 100
}

variable "engine" {
  description = "AUSCULT_ENGINE: whisper, transcribe-medical, transcribe, riva."
  type        = string
  default     = "whisper"
}

variable "engines" {
  description = "AUSCULT_ENGINES: more engines beside the default."
  type        = list(string)
  default     = []
}

variable "riva_url" {
  description = "AUSCULT_RIVA_URL, when riva is one of the engines."
  type        = string
  default     = null
}

variable "allowed_hosts" {
  description = "AUSCULT_ALLOWED_HOSTS: the public names of the service (the certificate's)."
  type        = list(string)
  default     = []
}

variable "events_enabled" {
  description = "Make the RecordingFinalized queue (and its dead-letter queue) and set AUSCULT_EVENTS_SQS_URL."
  type        = bool
  default     = true
}

variable "environment" {
  description = "More AUSCULT_* settings for the container (see the README's configuration table), e.g. { AUSCULT_MAX_DURATION_SECS = \"3600\" }."
  type        = map(string)
  default     = {}
}

# ---- Storage ----------------------------------------------------------------

variable "bucket_name" {
  description = "The recordings bucket; null: <name>-recordings-<account>-<region>."
  type        = string
  default     = null
}

variable "s3_prefix" {
  description = "Key prefix of everything the server stores in the bucket."
  type        = string
  default     = "auscult"
}

variable "bucket_force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds recordings."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "A deleted or replaced recording stays recoverable (as a noncurrent version) this many days."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "An existing KMS key for the bucket, queues, secrets, logs and database; null makes one. A given key's policy must let CloudWatch Logs use it."
  type        = string
  default     = null
}

# ---- Database ---------------------------------------------------------------

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_engine_version" {
  description = "Postgres major version (minor versions upgrade automatically)."
  type        = string
  default     = "16"
}

variable "db_allocated_storage" {
  description = "Initial database storage (GiB)."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling limit (GiB)."
  type        = number
  default     = 200
}

variable "db_name" {
  description = "The database the server uses."
  type        = string
  default     = "auscult"
}

variable "db_master_username" {
  description = "The master user (its password is made, kept and rotated by RDS in Secrets Manager)."
  type        = string
  default     = "auscult_admin"
}

variable "db_multi_az" {
  description = "A standby in a second zone."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Automated backup retention."
  type        = number
  default     = 14
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (turn off before a destroy)."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Delete the database without a final snapshot."
  type        = bool
  default     = false
}

variable "db_monitoring_interval" {
  description = "Enhanced monitoring interval (0 = off; 1, 5, 10, 15, 30, 60 s)."
  type        = number
  default     = 60
}

variable "db_performance_insights" {
  description = "Performance Insights (encrypted with the key)."
  type        = bool
  default     = true
}

# ---- Secrets ----------------------------------------------------------------

variable "database_url_secret_arn" {
  description = "An existing secret holding AUSCULT_DATABASE_URL; null makes an empty one to fill in (see README)."
  type        = string
  default     = null
}

variable "api_tokens_secret_arn" {
  description = "An existing secret holding AUSCULT_API_TOKENS; null makes an empty one to fill in."
  type        = string
  default     = null
}

variable "riva_api_key_secret_arn" {
  description = "An existing secret holding AUSCULT_RIVA_API_KEY (hosted Riva); null with riva among the engines makes an empty one."
  type        = string
  default     = null
}

# ---- Testing only -------------------------------------------------------------

variable "test_endpoint" {
  description = "Testing only: one endpoint URL for every AWS service (a local emulator). Leave null."
  type        = string
  default     = null
}

variable "test_access_key" {
  description = "Testing only: a fixed access key for test_endpoint. Leave null."
  type        = string
  default     = null
}

variable "test_secret_key" {
  description = "Testing only: the secret key for test_endpoint. Leave null."
  type        = string
  default     = null
  sensitive   = true
}
