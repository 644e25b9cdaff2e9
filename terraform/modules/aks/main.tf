# AKS: OIDC issuer and workload identity, Entra ID + Azure RBAC (no local accounts), Azure CNI overlay
# with Cilium network policy, KEDA, the Key Vault CSI driver, Container Insights and managed Prometheus.
# Pools: system (critical add-ons only), gpu (vLLM; tainted, scales from 0), gguf (GGUF servers; CPU by
# default, GPU optional).

data "azurerm_client_config" "current" {}

resource "azurerm_user_assigned_identity" "control_plane" {
  name                = "id-${var.name}-aks"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

# The control plane manages NICs and internal load balancers in the BYO VNet.
resource "azurerm_role_assignment" "network_contributor" {
  scope                = var.vnet_id
  role_definition_name = "Network Contributor"
  principal_id         = azurerm_user_assigned_identity.control_plane.principal_id
}

resource "azurerm_kubernetes_cluster" "this" {
  #checkov:skip=CKV_AZURE_170:The tier is var.sku_tier: Standard (uptime SLA) in prod, Free in dev as a cost decision.
  #checkov:skip=CKV_AZURE_6:Authorized IP ranges are set from var.api_authorized_ip_ranges (validated non-empty); checkov cannot resolve the variable.
  #checkov:skip=CKV_AZURE_115:Public API server limited to api_authorized_ip_ranges (the pipeline agents); a private cluster needs agents inside the VNet, see docs/deploy.md.
  #checkov:skip=CKV_AZURE_117:Disk encryption set (customer-managed keys) not required; platform-managed keys encrypt OS disks.
  #checkov:skip=CKV_AZURE_226:Ephemeral OS disks need a VM size with a large enough cache; vm sizes are variables, so managed disks are kept.
  name                              = "aks-${var.name}"
  location                          = var.location
  resource_group_name               = var.resource_group_name
  dns_prefix                        = var.name
  kubernetes_version                = var.kubernetes_version
  sku_tier                          = var.sku_tier
  oidc_issuer_enabled               = true
  workload_identity_enabled         = true
  local_account_disabled            = true
  role_based_access_control_enabled = true
  azure_policy_enabled              = true
  automatic_upgrade_channel         = "patch"
  node_os_upgrade_channel           = "NodeImage"
  image_cleaner_enabled             = true
  image_cleaner_interval_hours      = 48
  tags                              = var.tags

  default_node_pool {
    name                         = "system"
    vm_size                      = var.system_vm_size
    vnet_subnet_id               = var.nodes_subnet_id
    auto_scaling_enabled         = true
    min_count                    = var.system_min_count
    max_count                    = var.system_max_count
    max_pods                     = 50
    only_critical_addons_enabled = true
    host_encryption_enabled      = true
    os_sku                       = "AzureLinux"
    zones                        = var.zones
    temporary_name_for_rotation  = "systemtmp"
    tags                         = var.tags

    upgrade_settings {
      max_surge = "10%"
    }
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.control_plane.id]
  }

  azure_active_directory_role_based_access_control {
    tenant_id          = data.azurerm_client_config.current.tenant_id
    azure_rbac_enabled = true
  }

  api_server_access_profile {
    authorized_ip_ranges = var.api_authorized_ip_ranges
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_data_plane  = "cilium"
    network_policy      = "cilium"
    pod_cidr            = var.pod_cidr
    service_cidr        = var.service_cidr
    dns_service_ip      = cidrhost(var.service_cidr, 10)
    load_balancer_sku   = "standard"
    outbound_type       = "loadBalancer"
  }

  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = "2m"
  }

  workload_autoscaler_profile {
    keda_enabled = true
  }

  oms_agent {
    log_analytics_workspace_id      = var.log_analytics_workspace_id
    msi_auth_for_monitoring_enabled = true
  }

  monitor_metrics {}

  depends_on = [azurerm_role_assignment.network_contributor]
}

resource "azurerm_kubernetes_cluster_node_pool" "gpu" {
  #checkov:skip=CKV_AZURE_168:max_pods 30 is enough for one vLLM pod per GPU node plus daemonsets.
  name                    = "gpu"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.gpu_vm_size
  vnet_subnet_id          = var.nodes_subnet_id
  mode                    = "User"
  os_sku                  = "Ubuntu"
  auto_scaling_enabled    = true
  min_count               = var.gpu_min_count
  max_count               = var.gpu_max_count
  max_pods                = 30
  host_encryption_enabled = true
  os_disk_size_gb         = 256
  zones                   = var.gpu_zones
  # AKS installs the NVIDIA driver on GPU node images; the device plugin DaemonSet is in aks/base.
  node_taints = ["nvidia.com/gpu=present:NoSchedule"]
  node_labels = {
    "llmp.io/pool" = "gpu"
    "accelerator"  = "nvidia"
  }
  tags = var.tags

  upgrade_settings {
    max_surge = "1"
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "gguf" {
  name                    = "gguf"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.gguf_vm_size
  vnet_subnet_id          = var.nodes_subnet_id
  mode                    = "User"
  os_sku                  = var.gguf_gpu ? "Ubuntu" : "AzureLinux"
  auto_scaling_enabled    = true
  min_count               = var.gguf_min_count
  max_count               = var.gguf_max_count
  max_pods                = 50
  host_encryption_enabled = true
  zones                   = var.zones
  node_taints             = concat(["llmp.io/pool=gguf:NoSchedule"], var.gguf_gpu ? ["nvidia.com/gpu=present:NoSchedule"] : [])
  node_labels             = merge({ "llmp.io/pool" = "gguf" }, var.gguf_gpu ? { "accelerator" = "nvidia" } : {})
  tags                    = var.tags

  upgrade_settings {
    max_surge = "1"
  }
}

# Managed Prometheus: the cluster's metrics (pods annotated prometheus.io/scrape, see
# aks/base/monitoring) go to the Azure Monitor workspace through this rule.
resource "azurerm_monitor_data_collection_endpoint" "prometheus" {
  name                = "dce-${var.name}-prometheus"
  location            = var.location
  resource_group_name = var.resource_group_name
  kind                = "Linux"
  tags                = var.tags
}

resource "azurerm_monitor_data_collection_rule" "prometheus" {
  name                        = "dcr-${var.name}-prometheus"
  location                    = var.location
  resource_group_name         = var.resource_group_name
  data_collection_endpoint_id = azurerm_monitor_data_collection_endpoint.prometheus.id
  kind                        = "Linux"
  tags                        = var.tags

  destinations {
    monitor_account {
      monitor_account_id = var.monitor_workspace_id
      name               = "monitor-workspace"
    }
  }

  data_flow {
    streams      = ["Microsoft-PrometheusMetrics"]
    destinations = ["monitor-workspace"]
  }

  data_sources {
    prometheus_forwarder {
      streams = ["Microsoft-PrometheusMetrics"]
      name    = "prometheus-data-source"
    }
  }
}

resource "azurerm_monitor_data_collection_rule_association" "prometheus" {
  name                    = "dcra-${var.name}-prometheus"
  target_resource_id      = azurerm_kubernetes_cluster.this.id
  data_collection_rule_id = azurerm_monitor_data_collection_rule.prometheus.id
}
