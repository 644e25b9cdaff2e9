variable "name" {
  description = "Registry name (globally unique, 5-50 alphanumerics)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.name))
    error_message = "name must be 5-50 letters or digits."
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

variable "zone_redundant" {
  description = "Whether the registry is zone redundant."
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
  description = "privatelink.azurecr.io zone."
  type        = string
}

variable "pull_principal_ids" {
  description = "Principals that get AcrPull, by a static key (the AKS kubelet identity)."
  type        = map(string)
}

variable "push_principal_ids" {
  description = "Principals that get AcrPush, by a static key (the app pipeline's service principal)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
