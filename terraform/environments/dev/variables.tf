# Site-specific values without defaults come from the pipeline's variable group as TF_VAR_* (see
# docs/deploy.md); sizes are in terraform.tfvars. Validation lives in the modules.

variable "environment" {
  description = "Environment name."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "address_space" {
  description = "The VNet's /16."
  type        = string
}

variable "deployer_ip_ranges" {
  description = "CIDRs of the pipeline agents and operators (TF_VAR_deployer_ip_ranges, a JSON list)."
  type        = list(string)
}

variable "pipeline_principal_ids" {
  description = "Object IDs of the pipelines' service principals (TF_VAR_pipeline_principal_ids, a JSON list)."
  type        = list(string)
}

variable "entra_audience" {
  description = "Application ID URI of the gateway's Entra app registration (TF_VAR_entra_audience)."
  type        = string
}

variable "zones" {
  description = "Availability zones ([] for none)."
  type        = list(string)
}

variable "kubernetes_version" {
  description = "AKS minor version."
  type        = string
}

variable "aks_sku_tier" {
  description = "AKS tier: Free or Standard."
  type        = string
}

variable "system_vm_size" {
  description = "System pool VM size."
  type        = string
}

variable "system_min_count" {
  description = "Minimum system nodes."
  type        = number
}

variable "system_max_count" {
  description = "Maximum system nodes."
  type        = number
}

variable "gpu_vm_size" {
  description = "vLLM GPU pool VM size."
  type        = string
}

variable "gpu_zones" {
  description = "GPU pool zones."
  type        = list(string)
}

variable "gpu_min_count" {
  description = "Minimum GPU nodes."
  type        = number
}

variable "gpu_max_count" {
  description = "Maximum GPU nodes."
  type        = number
}

variable "gguf_vm_size" {
  description = "GGUF pool VM size."
  type        = string
}

variable "gguf_gpu" {
  description = "GGUF pool on GPUs."
  type        = bool
}

variable "gguf_min_count" {
  description = "Minimum GGUF nodes."
  type        = number
}

variable "gguf_max_count" {
  description = "Maximum GGUF nodes."
  type        = number
}

variable "postgres_sku" {
  description = "Postgres SKU."
  type        = string
}

variable "postgres_storage_mb" {
  description = "Postgres storage (MB)."
  type        = number
}

variable "postgres_backup_retention_days" {
  description = "Postgres backup retention (days)."
  type        = number
}

variable "postgres_geo_redundant_backup" {
  description = "Geo-redundant Postgres backups."
  type        = bool
}

variable "postgres_high_availability" {
  description = "Zone-redundant Postgres standby."
  type        = bool
}

variable "redis_sku" {
  description = "Redis tier."
  type        = string
}

variable "redis_capacity" {
  description = "Redis size."
  type        = number
}

variable "storage_replication_type" {
  description = "Storage replication."
  type        = string
}

variable "key_vault_purge_protection" {
  description = "Key Vault purge protection."
  type        = bool
}

variable "functions_maximum_instance_count" {
  description = "Most gateway instances."
  type        = number
}

variable "functions_instance_memory_in_mb" {
  description = "Gateway instance memory."
  type        = number
}

variable "gateway_db_pool_max" {
  description = "Postgres connections per gateway instance."
  type        = number
}

variable "log_retention_days" {
  description = "Log Analytics retention."
  type        = number
}

variable "log_daily_quota_gb" {
  description = "Log Analytics daily cap (GB, -1 for none)."
  type        = number
}
