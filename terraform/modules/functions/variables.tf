variable "name" {
  description = "Name stem of the platform (the app is func-NAME, NAME.azurewebsites.net must be free)."
  type        = string
}

variable "location" {
  description = "Azure region (one where Flex Consumption is offered)."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group."
  type        = string
}

variable "subnet_id" {
  description = "Integration subnet, delegated to Microsoft.App/environments."
  type        = string
}

variable "maximum_instance_count" {
  description = "Most instances Flex Consumption scales to (40-1000)."
  type        = number

  validation {
    condition     = var.maximum_instance_count >= 40 && var.maximum_instance_count <= 1000
    error_message = "maximum_instance_count must be between 40 and 1000."
  }
}

variable "instance_memory_in_mb" {
  description = "Instance memory: 2048 or 4096."
  type        = number

  validation {
    condition     = contains([2048, 4096], var.instance_memory_in_mb)
    error_message = "instance_memory_in_mb must be 2048 or 4096."
  }
}

variable "storage_account_id" {
  description = "ID of the runtime storage account (AzureWebJobsStorage and the deployment container)."
  type        = string
}

variable "storage_account_name" {
  description = "Name of the runtime storage account."
  type        = string
}

variable "storage_blob_endpoint" {
  description = "Blob endpoint of the runtime storage account (ends with /)."
  type        = string
}

variable "deployment_container" {
  description = "Container that holds the deployment package."
  type        = string
}

variable "storage_queue_endpoint" {
  description = "Queue endpoint of the Function App's storage account (https://NAME.queue.core.windows.net/)."
  type        = string
}

variable "rag_queue_id" {
  description = "Resource Manager ID of the rag-ingest queue (large RAG uploads)."
  type        = string
}

variable "application_insights_id" {
  description = "ID of Application Insights."
  type        = string
}

variable "application_insights_connection_string" {
  description = "Connection string of Application Insights."
  type        = string
  sensitive   = true
}

variable "key_vault_id" {
  description = "ID of the Key Vault (the app gets Key Vault Secrets User)."
  type        = string
}

variable "key_vault_uri" {
  description = "URI of the Key Vault (LLMP_KEY_VAULT_URL)."
  type        = string
}

variable "secret_uris" {
  description = "Versionless secret URIs by name: database-url, redis-url, qdrant-api-key."
  type        = map(string)

  validation {
    condition     = alltrue([for k in ["database-url", "redis-url", "qdrant-api-key"] : contains(keys(var.secret_uris), k)])
    error_message = "secret_uris must hold database-url, redis-url and qdrant-api-key."
  }
}

variable "tenant_id" {
  description = "Entra tenant whose tokens the gateway accepts (LLMP_ENTRA_TENANT_ID)."
  type        = string
}

variable "entra_audience" {
  description = "Audience (application ID URI) of Entra tokens for the gateway (LLMP_ENTRA_AUDIENCES, comma-separated)."
  type        = string
}

variable "gguf_url" {
  description = "Base URL of the smollm2-135m GGUF servers' internal load balancer (LLMP_SMOLLM2_URL)."
  type        = string
}

variable "vllm_url" {
  description = "Base URL of the vLLM internal load balancer (LLMP_VLLM_URL)."
  type        = string
}

variable "embedding_url" {
  description = "Base URL of the embedding servers' internal load balancer (LLMP_EMBEDDING_URL)."
  type        = string
}

variable "qdrant_url" {
  description = "Base URL of Qdrant's internal load balancer (LLMP_QDRANT_URL)."
  type        = string
}

variable "db_pool_max" {
  description = "Postgres connections per instance (LLMP_DB_POOL_MAX); times maximum_instance_count must fit the server's max_connections."
  type        = number

  validation {
    condition     = var.db_pool_max >= 1 && var.db_pool_max <= 20
    error_message = "db_pool_max must be between 1 and 20."
  }
}

variable "log_level" {
  description = "Gateway log level (LLMP_LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "extra_app_settings" {
  description = "Additional app settings (merged over the platform's own)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
