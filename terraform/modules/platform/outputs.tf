# The outputs the app and model pipelines read (pipelines/scripts/write_infra_env.py turns the
# k8s_* ones into aks/overlays/ENV/infra.env).

output "resource_group_name" {
  description = "Resource group of the platform."
  value       = azurerm_resource_group.this.name
}

output "aks_cluster_name" {
  description = "Name of the AKS cluster."
  value       = module.aks.cluster_name
}

output "function_app_name" {
  description = "Name of the gateway's Function App."
  value       = module.functions.name
}

output "gateway_url" {
  description = "Base URL of the gateway (OpenAI clients use GATEWAY_URL/v1)."
  value       = "https://${module.functions.default_hostname}"
}

output "acr_login_server" {
  description = "Registry the GGUF server image is pushed to."
  value       = module.registry.login_server
}

output "blob_account_url" {
  description = "Blob endpoint of the models account (LLMP_BLOB_ACCOUNT_URL)."
  value       = module.models_storage.primary_blob_endpoint
}

output "k8s_values" {
  description = "Values of the AKS overlays' infra.env: identities, addresses, endpoints."
  value = {
    TENANT_ID                 = data.azurerm_client_config.current.tenant_id
    GGUF_CLIENT_ID            = module.gguf_identity.client_id
    QDRANT_CLIENT_ID          = module.qdrant_identity.client_id
    VLLM_CLIENT_ID            = module.vllm_identity.client_id
    KEDA_CLIENT_ID            = module.keda_identity.client_id
    BLOB_ACCOUNT_URL          = trimsuffix(module.models_storage.primary_blob_endpoint, "/")
    STORAGE_ACCOUNT_NAME      = module.models_storage.name
    KEY_VAULT_NAME            = module.keyvault.name
    PROMETHEUS_QUERY_ENDPOINT = module.monitoring.prometheus_query_endpoint
    ACR_LOGIN_SERVER          = module.registry.login_server
    FUNCTIONS_SUBNET_CIDR     = module.network.subnet_cidrs.functions
    ILB_SUBNET_NAME           = module.network.aks_ilb_subnet_name
    GGUF_ILB_IP               = local.ilb_ips.gguf
    VLLM_ILB_IP               = local.ilb_ips.vllm
    QDRANT_ILB_IP             = local.ilb_ips.qdrant
    EMBEDDING_ILB_IP          = local.ilb_ips.embedding
  }
}
