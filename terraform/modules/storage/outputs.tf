output "id" {
  description = "ID of the storage account."
  value       = azurerm_storage_account.this.id
}

output "name" {
  description = "Name of the storage account."
  value       = azurerm_storage_account.this.name
}

output "primary_blob_endpoint" {
  description = "Blob endpoint, https://NAME.blob.core.windows.net/ (LLMP_BLOB_ACCOUNT_URL)."
  value       = azurerm_storage_account.this.primary_blob_endpoint
}

output "container_ids" {
  description = "Resource Manager IDs of the containers by name (role assignment scopes)."
  value       = { for k, c in azurerm_storage_container.this : k => c.id }
}

output "primary_queue_endpoint" {
  description = "Queue endpoint, https://NAME.queue.core.windows.net/ (LLMP_RAG_QUEUE__queueServiceUri)."
  value       = azurerm_storage_account.this.primary_queue_endpoint
}

output "queue_ids" {
  description = "Resource Manager IDs of the queues by name (role assignment scopes)."
  value       = { for k, q in azurerm_storage_queue.this : k => q.id }
}
