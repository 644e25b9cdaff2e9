# The whole llmp platform for one environment: this module wires the others together. Environments
# (terraform/environments/*) call it with their sizes.

data "azurerm_client_config" "current" {}

resource "random_string" "suffix" {
  length  = 5
  upper   = false
  special = false
}

resource "random_password" "qdrant_api_key" {
  length  = 48
  special = false
}

resource "random_password" "gguf_refresh_token" {
  length  = 48
  special = false
}

locals {
  name    = "${var.prefix}-${var.environment}"
  compact = "${var.prefix}${var.environment}${random_string.suffix.result}" # for globally unique names
  tags    = merge({ platform = var.prefix, environment = var.environment, managed-by = "terraform" }, var.tags)

  # Kubernetes side (aks/): namespace and service accounts of the workload identities.
  namespace = "llmp-models"

  # Fixed addresses of the model tiers' internal load balancers, in the ILB subnet. The AKS overlays
  # receive them through infra.env (pipelines/scripts/write_infra_env.py).
  ilb_ips = {
    gguf      = cidrhost(module.network.subnet_cidrs.aks_ilb, 10)
    vllm      = cidrhost(module.network.subnet_cidrs.aks_ilb, 20)
    qdrant    = cidrhost(module.network.subnet_cidrs.aks_ilb, 30)
    embedding = cidrhost(module.network.subnet_cidrs.aks_ilb, 40)
  }
}

resource "azurerm_resource_group" "this" {
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

module "network" {
  source              = "../network"
  name                = local.name
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = var.address_space
  tags                = local.tags
}

module "monitoring" {
  source              = "../monitoring"
  name                = local.name
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  log_retention_days  = var.log_retention_days
  log_daily_quota_gb  = var.log_daily_quota_gb
  tags                = local.tags
}

module "aks" {
  source                     = "../aks"
  name                       = local.name
  location                   = var.location
  resource_group_name        = azurerm_resource_group.this.name
  kubernetes_version         = var.kubernetes_version
  sku_tier                   = var.aks_sku_tier
  vnet_id                    = module.network.vnet_id
  nodes_subnet_id            = module.network.subnet_ids.aks_nodes
  api_authorized_ip_ranges   = var.deployer_ip_ranges
  zones                      = var.zones
  system_vm_size             = var.system_vm_size
  system_min_count           = var.system_min_count
  system_max_count           = var.system_max_count
  gpu_vm_size                = var.gpu_vm_size
  gpu_zones                  = var.gpu_zones
  gpu_min_count              = var.gpu_min_count
  gpu_max_count              = var.gpu_max_count
  gguf_vm_size               = var.gguf_vm_size
  gguf_gpu                   = var.gguf_gpu
  gguf_min_count             = var.gguf_min_count
  gguf_max_count             = var.gguf_max_count
  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
  monitor_workspace_id       = module.monitoring.monitor_workspace_id
  tags                       = local.tags
}

module "registry" {
  source                     = "../registry"
  name                       = "acr${local.compact}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.this.name
  zone_redundant             = length(var.zones) > 0
  deployer_ip_ranges         = var.deployer_ip_ranges
  private_endpoint_subnet_id = module.network.subnet_ids.private_endpoints
  private_dns_zone_id        = module.network.private_dns_zone_ids.acr
  pull_principal_ids         = { aks-kubelet = module.aks.kubelet_object_id }
  push_principal_ids         = { for i, id in var.pipeline_principal_ids : "pipeline-${i}" => id }
  tags                       = local.tags
}

module "data" {
  source                         = "../data"
  name                           = local.name
  location                       = var.location
  resource_group_name            = azurerm_resource_group.this.name
  tenant_id                      = data.azurerm_client_config.current.tenant_id
  postgres_sku                   = var.postgres_sku
  postgres_storage_mb            = var.postgres_storage_mb
  postgres_backup_retention_days = var.postgres_backup_retention_days
  geo_redundant_backup           = var.postgres_geo_redundant_backup
  postgres_high_availability     = var.postgres_high_availability
  postgres_subnet_id             = module.network.subnet_ids.postgres
  postgres_private_dns_zone_id   = module.network.private_dns_zone_ids.postgres
  redis_sku                      = var.redis_sku
  redis_capacity                 = var.redis_capacity
  private_endpoint_subnet_id     = module.network.subnet_ids.private_endpoints
  redis_private_dns_zone_id      = module.network.private_dns_zone_ids.redis
  tags                           = local.tags
}

# GGUF files (the `models` container, versioned: docs/models.md) and Qdrant snapshots.
module "models_storage" {
  source                        = "../storage"
  name                          = "st${local.compact}m"
  location                      = var.location
  resource_group_name           = azurerm_resource_group.this.name
  replication_type              = var.storage_replication_type
  versioning_enabled            = true
  containers                    = ["models", "qdrant-snapshots"]
  deployer_ip_ranges            = var.deployer_ip_ranges
  private_endpoint_subnet_id    = module.network.subnet_ids.private_endpoints
  private_endpoint_subresources = { blob = module.network.private_dns_zone_ids.blob }
  log_analytics_workspace_id    = module.monitoring.log_analytics_workspace_id
  tags                          = local.tags
}

# The Function App's own storage (host state and the deployment package).
module "functions_storage" {
  source                     = "../storage"
  name                       = "st${local.compact}f"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.this.name
  replication_type           = var.storage_replication_type
  versioning_enabled         = false
  containers                 = ["deployments"]
  queues                     = ["rag-ingest"] # large RAG uploads (the rag_ingest_job trigger)
  deployer_ip_ranges         = var.deployer_ip_ranges
  private_endpoint_subnet_id = module.network.subnet_ids.private_endpoints
  private_endpoint_subresources = {
    blob  = module.network.private_dns_zone_ids.blob
    queue = module.network.private_dns_zone_ids.queue
    table = module.network.private_dns_zone_ids.table
  }
  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
  tags                       = local.tags
}

module "keyvault" {
  source                     = "../keyvault"
  name                       = "kv-${local.compact}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.this.name
  purge_protection_enabled   = var.key_vault_purge_protection
  deployer_ip_ranges         = var.deployer_ip_ranges
  private_endpoint_subnet_id = module.network.subnet_ids.private_endpoints
  private_dns_zone_id        = module.network.private_dns_zone_ids.key_vault
  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
  tags                       = local.tags
  secrets = {
    database-url       = module.data.database_url
    redis-url          = module.data.redis_url
    qdrant-api-key     = random_password.qdrant_api_key.result
    gguf-refresh-token = random_password.gguf_refresh_token.result
  }
}

module "functions" {
  source                                 = "../functions"
  name                                   = "${local.name}-${random_string.suffix.result}"
  location                               = var.location
  resource_group_name                    = azurerm_resource_group.this.name
  subnet_id                              = module.network.subnet_ids.functions
  maximum_instance_count                 = var.functions_maximum_instance_count
  instance_memory_in_mb                  = var.functions_instance_memory_in_mb
  storage_account_id                     = module.functions_storage.id
  storage_account_name                   = module.functions_storage.name
  storage_blob_endpoint                  = module.functions_storage.primary_blob_endpoint
  deployment_container                   = "deployments"
  storage_queue_endpoint                 = module.functions_storage.primary_queue_endpoint
  rag_queue_id                           = module.functions_storage.queue_ids["rag-ingest"]
  application_insights_id                = module.monitoring.application_insights_id
  application_insights_connection_string = module.monitoring.application_insights_connection_string
  key_vault_id                           = module.keyvault.id
  key_vault_uri                          = module.keyvault.vault_uri
  secret_uris                            = module.keyvault.secret_versionless_ids
  tenant_id                              = data.azurerm_client_config.current.tenant_id
  entra_audience                         = var.entra_audience
  gguf_url                               = "http://${local.ilb_ips.gguf}:8081"
  vllm_url                               = "http://${local.ilb_ips.vllm}:8000"
  qdrant_url                             = "http://${local.ilb_ips.qdrant}:6333"
  embedding_url                          = "http://${local.ilb_ips.embedding}:8082"
  db_pool_max                            = var.gateway_db_pool_max
  log_level                              = var.gateway_log_level
  tags                                   = local.tags
}

# Workload identities of the AKS service accounts (aks/base: gguf-server, vllm, qdrant) and of KEDA's operator
# (its Prometheus scaler reads the Azure Monitor workspace).
module "gguf_identity" {
  source              = "../workload-identity"
  name                = "id-${local.name}-gguf"
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  oidc_issuer_url     = module.aks.oidc_issuer_url
  namespace           = local.namespace
  service_account     = "gguf-server"
  tags                = local.tags
  role_assignments = {
    models = { scope = module.models_storage.container_ids["models"], role = "Storage Blob Data Reader" }
    token  = { scope = module.keyvault.secret_resource_ids["gguf-refresh-token"], role = "Key Vault Secrets User" }
  }
}

# vLLM's init container reads its weights folder from the models container (models/weights_sync.py).
module "vllm_identity" {
  source              = "../workload-identity"
  name                = "id-${local.name}-vllm"
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  oidc_issuer_url     = module.aks.oidc_issuer_url
  namespace           = local.namespace
  service_account     = "vllm"
  tags                = local.tags
  role_assignments = {
    models = { scope = module.models_storage.container_ids["models"], role = "Storage Blob Data Reader" }
  }
}

module "qdrant_identity" {
  source              = "../workload-identity"
  name                = "id-${local.name}-qdrant"
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  oidc_issuer_url     = module.aks.oidc_issuer_url
  namespace           = local.namespace
  service_account     = "qdrant"
  tags                = local.tags
  role_assignments = {
    snapshots = { scope = module.models_storage.container_ids["qdrant-snapshots"], role = "Storage Blob Data Contributor" }
    api_key   = { scope = module.keyvault.secret_resource_ids["qdrant-api-key"], role = "Key Vault Secrets User" }
  }
}

module "keda_identity" {
  source              = "../workload-identity"
  name                = "id-${local.name}-keda"
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  oidc_issuer_url     = module.aks.oidc_issuer_url
  namespace           = "kube-system"
  service_account     = "keda-operator"
  tags                = local.tags
  role_assignments = {
    prometheus = { scope = module.monitoring.monitor_workspace_id, role = "Monitoring Data Reader" }
  }
}

# The pipelines' service principals: publish models (llmp models publish / rollback) and deploy to AKS.
resource "azurerm_role_assignment" "pipeline_models" {
  for_each             = { for i, id in var.pipeline_principal_ids : "pipeline-${i}" => id }
  scope                = module.models_storage.container_ids["models"]
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = each.value
}

resource "azurerm_role_assignment" "pipeline_aks" {
  for_each             = { for i, id in var.pipeline_principal_ids : "pipeline-${i}" => id }
  scope                = module.aks.cluster_id
  role_definition_name = "Azure Kubernetes Service RBAC Cluster Admin"
  principal_id         = each.value
}
