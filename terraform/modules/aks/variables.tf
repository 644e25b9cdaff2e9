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

variable "kubernetes_version" {
  description = "Kubernetes minor version (for example 1.32); patches follow the patch upgrade channel."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.32."
  }
}

variable "sku_tier" {
  description = "AKS control plane tier: Free (no SLA) or Standard (uptime SLA)."
  type        = string

  validation {
    condition     = contains(["Free", "Standard"], var.sku_tier)
    error_message = "sku_tier must be Free or Standard."
  }
}

variable "vnet_id" {
  description = "ID of the VNet (the control plane identity gets Network Contributor on it)."
  type        = string
}

variable "nodes_subnet_id" {
  description = "Subnet of the node pools."
  type        = string
}

variable "pod_cidr" {
  description = "Overlay pod CIDR (not routed in the VNet)."
  type        = string
  default     = "10.244.0.0/16"
}

variable "service_cidr" {
  description = "Kubernetes service CIDR (must not overlap the VNet)."
  type        = string
  default     = "10.0.0.0/16"
}

variable "api_authorized_ip_ranges" {
  description = "CIDRs allowed to reach the API server (pipeline agents, operators)."
  type        = list(string)

  validation {
    condition     = length(var.api_authorized_ip_ranges) > 0 && alltrue([for c in var.api_authorized_ip_ranges : can(cidrhost(c, 0))])
    error_message = "api_authorized_ip_ranges must be a non-empty list of CIDR blocks."
  }
}

variable "zones" {
  description = "Availability zones of the system and GGUF pools ([] for none)."
  type        = list(string)
}

variable "system_vm_size" {
  description = "VM size of the system pool."
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
  description = "VM size of the vLLM GPU pool (for example Standard_NC24ads_A100_v4)."
  type        = string

  validation {
    condition     = can(regex("^Standard_N", var.gpu_vm_size))
    error_message = "gpu_vm_size must be an N-series (GPU) size."
  }
}

variable "gpu_zones" {
  description = "Availability zones of the GPU pool (GPU sizes are often in few zones)."
  type        = list(string)
  default     = []
}

variable "gpu_min_count" {
  description = "Minimum GPU nodes (0 lets the pool scale to zero)."
  type        = number

  validation {
    condition     = var.gpu_min_count >= 0
    error_message = "gpu_min_count must be >= 0."
  }
}

variable "gpu_max_count" {
  description = "Maximum GPU nodes."
  type        = number

  validation {
    condition     = var.gpu_max_count >= 1
    error_message = "gpu_max_count must be >= 1."
  }
}

variable "gguf_vm_size" {
  description = "VM size of the GGUF pool (CPU by default; an N-series size with gguf_gpu = true)."
  type        = string
}

variable "gguf_gpu" {
  description = "Whether the GGUF pool is a GPU pool (adds the nvidia.com/gpu taint and label)."
  type        = bool
  default     = false
}

variable "gguf_min_count" {
  description = "Minimum GGUF nodes."
  type        = number

  validation {
    condition     = var.gguf_min_count >= 0
    error_message = "gguf_min_count must be >= 0."
  }
}

variable "gguf_max_count" {
  description = "Maximum GGUF nodes."
  type        = number
}

variable "log_analytics_workspace_id" {
  description = "Log Analytics workspace of Container Insights."
  type        = string
}

variable "monitor_workspace_id" {
  description = "Azure Monitor workspace that managed Prometheus writes to."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
