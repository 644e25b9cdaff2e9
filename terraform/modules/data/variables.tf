variable "name" {
  description = "Name stem of the platform."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group."
  type        = string
}

variable "tenant_id" {
  description = "Entra tenant of the Postgres Entra administrators."
  type        = string
}

variable "postgres_sku" {
  description = "Postgres Flexible Server SKU (B_Standard_B1ms, GP_Standard_D2ds_v5, ...)."
  type        = string

  validation {
    condition     = can(regex("^(B|GP|MO)_Standard_", var.postgres_sku))
    error_message = "postgres_sku must be a Flexible Server SKU name such as B_Standard_B1ms."
  }
}

variable "postgres_storage_mb" {
  description = "Postgres storage in MB."
  type        = number

  validation {
    condition     = contains([32768, 65536, 131072, 262144, 524288, 1048576], var.postgres_storage_mb)
    error_message = "postgres_storage_mb must be one of the Flexible Server sizes (32768 ... 1048576)."
  }
}

variable "postgres_backup_retention_days" {
  description = "Backup retention (7-35 days)."
  type        = number

  validation {
    condition     = var.postgres_backup_retention_days >= 7 && var.postgres_backup_retention_days <= 35
    error_message = "postgres_backup_retention_days must be between 7 and 35."
  }
}

variable "geo_redundant_backup" {
  description = "Geo-redundant Postgres backups."
  type        = bool
}

variable "postgres_high_availability" {
  description = "Zone-redundant standby (not available on Burstable SKUs)."
  type        = bool
}

variable "postgres_zone" {
  description = "Availability zone of the primary."
  type        = string
  default     = "1"
}

variable "postgres_subnet_id" {
  description = "Subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
  type        = string
}

variable "postgres_private_dns_zone_id" {
  description = "Private DNS zone (*.private.postgres.database.azure.com) linked to the VNet."
  type        = string
}

variable "redis_sku" {
  description = "Azure Cache for Redis tier: Basic, Standard or Premium."
  type        = string

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.redis_sku)
    error_message = "redis_sku must be Basic, Standard or Premium."
  }
}

variable "redis_capacity" {
  description = "Redis size within the tier (C0-C6, P1-P5)."
  type        = number
}

variable "private_endpoint_subnet_id" {
  description = "Subnet of the Redis private endpoint."
  type        = string
}

variable "redis_private_dns_zone_id" {
  description = "privatelink.redis.cache.windows.net zone."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
