output "client_id" {
  description = "Client ID (the service account's azure.workload.identity/client-id annotation)."
  value       = azurerm_user_assigned_identity.this.client_id
}

output "principal_id" {
  description = "Object ID of the identity."
  value       = azurerm_user_assigned_identity.this.principal_id
}
