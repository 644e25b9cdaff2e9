# The gateway: a Python Function App on Flex Consumption, integrated with the VNet (it reaches Postgres,
# Redis, Key Vault, Qdrant and the model tiers' internal load balancers privately), with a system-
# assigned identity for Key Vault references, its runtime storage and Application Insights.

locals {
  kv = { for name, uri in var.secret_uris : name => "@Microsoft.KeyVault(SecretUri=${uri})" }

  # Every setting the gateway reads in Azure. tests/deploy/test_settings_coverage.py checks this map
  # against the fields of the gateway's Settings classes and the ${VAR} references of the catalog.
  app_settings = {
    PYTHON_ENABLE_INIT_INDEXING               = "1"
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD"
    LLMP_ENVIRONMENT                          = "azure"
    LLMP_LOG_LEVEL                            = var.log_level
    DATABASE_URL                              = local.kv["database-url"]
    REDIS_URL                                 = local.kv["redis-url"]
    LLMP_DB_POOL_MAX                          = tostring(var.db_pool_max)
    LLMP_MIGRATE_ON_START                     = "true"
    LLMP_SMOLLM2_URL                          = var.gguf_url
    LLMP_VLLM_URL                             = var.vllm_url
    LLMP_VLLM_ENABLED                         = "true"
    LLMP_VLLM_LOCAL                           = "0" # smollm2-vllm: llmp serve's CPU vLLM, never in Azure
    # gemma3-270m: local only until aks/ deploys it; `auto` then routes to SmolLM2 alone in Azure.
    LLMP_GEMMA3_ENABLED = "false"
    LLMP_GEMMA3_URL     = ""
    LLMP_QDRANT_URL     = var.qdrant_url
    # The embedding tier (aks/base/embedding-server): /v1/embeddings, and RAG and the semantic cache.
    LLMP_EMBEDDING_URL        = var.embedding_url
    LLMP_EMBEDDING_ALIAS      = "all-minilm-l6-v2"
    LLMP_EMBEDDING_MAX_INPUTS = "2048"
    LLMP_QDRANT_API_KEY       = local.kv["qdrant-api-key"]
    # Large uploads: jobs in Postgres, their ids on the rag-ingest queue, run by the rag_ingest_job trigger.
    # One setting is the trigger's identity-based connection and the gateway's queue URL.
    LLMP_RAG_JOBS                                     = "queue"
    LLMP_RAG_QUEUE__queueServiceUri                   = var.storage_queue_endpoint
    LLMP_KEY_VAULT_URL                                = var.key_vault_uri
    LLMP_ENTRA_TENANT_ID                              = var.tenant_id
    LLMP_ENTRA_AUDIENCES                              = var.entra_audience
    AzureFunctionsJobHost__logging__logLevel__default = var.log_level == "DEBUG" ? "Debug" : "Information"
  }
}

resource "azurerm_service_plan" "this" {
  #checkov:skip=CKV_AZURE_225:FC1 (Flex Consumption) has no instance count or zone setting on the plan; instances are per app and scale on demand.
  #checkov:skip=CKV_AZURE_212:FC1 (Flex Consumption) has no minimum instance count on the plan; see above.
  name                = "asp-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = var.tags
}

resource "azurerm_function_app_flex_consumption" "this" {
  #checkov:skip=CKV_AZURE_221:The gateway is the platform's public API; clients authenticate with API keys or Entra tokens checked by the gateway itself.
  #checkov:skip=CKV_AZURE_56:App Service Authentication would reject API-key clients; the gateway authenticates every /v1 request itself (docs/architecture.md).
  name                                           = "func-${var.name}"
  location                                       = var.location
  resource_group_name                            = var.resource_group_name
  service_plan_id                                = azurerm_service_plan.this.id
  runtime_name                                   = "python"
  runtime_version                                = "3.11"
  maximum_instance_count                         = var.maximum_instance_count
  instance_memory_in_mb                          = var.instance_memory_in_mb
  storage_container_type                         = "blobContainer"
  storage_container_endpoint                     = "${var.storage_blob_endpoint}${var.deployment_container}"
  storage_authentication_type                    = "SystemAssignedIdentity"
  virtual_network_subnet_id                      = var.subnet_id
  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = false
  function_app_storage_account_name              = var.storage_account_name
  function_app_storage_uses_managed_identity     = true
  app_settings                                   = merge(local.app_settings, var.extra_app_settings)
  tags                                           = var.tags

  identity {
    type = "SystemAssigned"
  }

  site_config {
    application_insights_connection_string = var.application_insights_connection_string
    minimum_tls_version                    = "1.2"
    http2_enabled                          = true
  }
}

resource "azurerm_role_assignment" "runtime_storage" {
  for_each = toset([
    "Storage Blob Data Owner", # deployment package, host leases
    "Storage Queue Data Contributor",
    "Storage Table Data Contributor",
  ])
  scope                = var.storage_account_id
  role_definition_name = each.value
  principal_id         = azurerm_function_app_flex_consumption.this.identity[0].principal_id
}

# Send (the upload handler) and receive (the rag_ingest_job trigger) on the rag-ingest queue.
resource "azurerm_role_assignment" "rag_queue" {
  scope                = var.rag_queue_id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = azurerm_function_app_flex_consumption.this.identity[0].principal_id
}

resource "azurerm_role_assignment" "key_vault" {
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_function_app_flex_consumption.this.identity[0].principal_id
}

resource "azurerm_role_assignment" "telemetry" {
  scope                = var.application_insights_id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_function_app_flex_consumption.this.identity[0].principal_id
}
