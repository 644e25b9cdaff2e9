output "resource_group_name" {
  description = "Resource group of the platform."
  value       = module.platform.resource_group_name
}

output "aks_cluster_name" {
  description = "AKS cluster (az aks get-credentials; the app pipeline deploys aks/overlays to it)."
  value       = module.platform.aks_cluster_name
}

output "function_app_name" {
  description = "The gateway's Function App (the app pipeline deploys the Functions package to it)."
  value       = module.platform.function_app_name
}

output "gateway_url" {
  description = "Base URL of the gateway; OpenAI clients use GATEWAY_URL/v1, the smoke test GATEWAY_URL/ready."
  value       = module.platform.gateway_url
}

output "acr_login_server" {
  description = "Registry the app pipeline pushes the GGUF server image to."
  value       = module.platform.acr_login_server
}

output "blob_account_url" {
  description = "Models Blob endpoint: LLMP_BLOB_ACCOUNT_URL for `llmp models publish` (model pipeline)."
  value       = module.platform.blob_account_url
}

output "k8s_values" {
  description = "Values for aks/overlays/ENV/infra.env (written by pipelines/scripts/write_infra_env.py)."
  value       = module.platform.k8s_values
}
