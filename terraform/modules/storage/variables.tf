variable "name" {
  description = "Storage account name (globally unique, 3-24 lowercase letters and digits)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.name))
    error_message = "name must be 3-24 lowercase letters or digits."
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

variable "replication_type" {
  description = "LRS, ZRS, GRS or GZRS."
  type        = string

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "GZRS"], var.replication_type)
    error_message = "replication_type must be LRS, ZRS, GRS or GZRS."
  }
}

variable "versioning_enabled" {
  description = "Blob versioning (and change feed): on for the models account."
  type        = bool
  default     = true
}

variable "containers" {
  description = "Private containers to create."
  type        = list(string)
}

variable "queues" {
  description = "Storage queues to create."
  type        = list(string)
  default     = []
}

variable "deployer_ip_ranges" {
  description = "CIDRs allowed on the public endpoint (pipeline agents); empty disables public access."
  type        = list(string)
}

variable "private_endpoint_subnet_id" {
  description = "Subnet of the private endpoints."
  type        = string
}

variable "private_endpoint_subresources" {
  description = "Private endpoints to create: subresource (blob, queue, table) => private DNS zone ID."
  type        = map(string)
}

variable "log_analytics_workspace_id" {
  description = "Workspace for the blob service's diagnostic logs."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
