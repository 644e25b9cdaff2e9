output "id" {
  description = "ID of the registry."
  value       = azurerm_container_registry.this.id
}

output "login_server" {
  description = "Login server (NAME.azurecr.io) the GGUF image is pushed to."
  value       = azurerm_container_registry.this.login_server
}
