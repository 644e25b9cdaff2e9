variable "name" {
  description = "Key Vault name (globally unique, 3-24 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 3-24 letters, digits or hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group."
  type        = string
}

variable "purge_protection_enabled" {
  description = "Purge protection (on in prod; off in dev so a torn-down vault's name can be reused)."
  type        = bool
}

variable "deployer_ip_ranges" {
  description = "CIDRs allowed on the public endpoint (pipeline agents); empty disables public access."
  type        = list(string)
}

variable "private_endpoint_subnet_id" {
  description = "Subnet of the private endpoint."
  type        = string
}

variable "private_dns_zone_id" {
  description = "privatelink.vaultcore.azure.net zone."
  type        = string
}

variable "secrets" {
  description = "Secret name => value."
  type        = map(string)
  sensitive   = true
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the vault's audit logs."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
