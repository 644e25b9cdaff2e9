variable "prefix" {
  description = "Short name of the platform, the stem of every resource name."
  type        = string
  default     = "llmp"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.prefix))
    error_message = "prefix must be 2-8 lowercase letters or digits, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name (dev, prod, ...)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,5}$", var.environment))
    error_message = "environment must be 2-6 lowercase letters or digits, starting with a letter."
  }
}

variable "location" {
  description = "Azure region; it must offer Flex Consumption, the GPU VM size and Postgres Flexible Server."
  type        = string
}

variable "address_space" {
  description = "The VNet's /16 (subnets are carved at fixed offsets, see modules/network)."
  type        = string
}

variable "deployer_ip_ranges" {
  description = "CIDRs of the pipeline agents and operators: the AKS API server and the public endpoints of Key Vault, Storage and ACR admit only these."
  type        = list(string)

  validation {
    condition     = length(var.deployer_ip_ranges) > 0 && alltrue([for c in var.deployer_ip_ranges : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "deployer_ip_ranges must be a non-empty list of CIDR blocks, none of them 0.0.0.0/0."
  }
}

variable "pipeline_principal_ids" {
  description = "Object IDs of the pipelines' service principals (AcrPush, model publishing, AKS deploy)."
  type        = list(string)

  validation {
    condition     = alltrue([for id in var.pipeline_principal_ids : can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", id))])
    error_message = "pipeline_principal_ids must be object IDs (GUIDs)."
  }
}

variable "entra_audience" {
  description = "Application ID URI of the gateway's Entra app registration (tokens for it are accepted)."
  type        = string

  validation {
    condition     = can(regex("^(api://|https://)", var.entra_audience))
    error_message = "entra_audience must start with api:// or https://."
  }
}

variable "zones" {
  description = "Availability zones for the system and GGUF pools and the registry ([] for none)."
  type        = list(string)
}

variable "kubernetes_version" {
  description = "AKS Kubernetes minor version."
  type        = string
}

variable "aks_sku_tier" {
  description = "AKS tier: Free or Standard."
  type        = string
}

variable "system_vm_size" {
  description = "VM size of the AKS system pool."
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
  description = "VM size of the vLLM GPU pool."
  type        = string
}

variable "gpu_zones" {
  description = "Availability zones of the GPU pool."
  type        = list(string)
  default     = []
}

variable "gpu_min_count" {
  description = "Minimum GPU nodes (0: scale to zero)."
  type        = number
}

variable "gpu_max_count" {
  description = "Maximum GPU nodes."
  type        = number
}

variable "gguf_vm_size" {
  description = "VM size of the GGUF pool."
  type        = string
}

variable "gguf_gpu" {
  description = "GGUF pool on GPUs (build the image with VARIANT=cuda)."
  type        = bool
  default     = false
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
  description = "Postgres Flexible Server SKU."
  type        = string
}

variable "postgres_storage_mb" {
  description = "Postgres storage in MB."
  type        = number
}

variable "postgres_backup_retention_days" {
  description = "Postgres backup retention in days."
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
  description = "Azure Cache for Redis tier."
  type        = string
}

variable "redis_capacity" {
  description = "Azure Cache for Redis size within the tier."
  type        = number
}

variable "storage_replication_type" {
  description = "Replication of the storage accounts."
  type        = string
}

variable "key_vault_purge_protection" {
  description = "Key Vault purge protection."
  type        = bool
}

variable "functions_maximum_instance_count" {
  description = "Most Flex Consumption instances of the gateway."
  type        = number
}

variable "functions_instance_memory_in_mb" {
  description = "Gateway instance memory (2048 or 4096)."
  type        = number
}

variable "gateway_db_pool_max" {
  description = "Postgres connections per gateway instance."
  type        = number
}

variable "gateway_log_level" {
  description = "Gateway log level."
  type        = string
  default     = "INFO"
}

variable "log_retention_days" {
  description = "Log Analytics retention."
  type        = number
}

variable "log_daily_quota_gb" {
  description = "Log Analytics daily cap in GB (-1: none)."
  type        = number
}

variable "tags" {
  description = "Extra tags."
  type        = map(string)
  default     = {}
}
