output "name" {
  description = "Name of the Function App (the app pipeline deploys to it)."
  value       = azurerm_function_app_flex_consumption.this.name
}

output "default_hostname" {
  description = "Host name of the gateway (https://HOST/v1 is the OpenAI base URL)."
  value       = azurerm_function_app_flex_consumption.this.default_hostname
}

output "principal_id" {
  description = "Object ID of the app's system-assigned identity."
  value       = azurerm_function_app_flex_consumption.this.identity[0].principal_id
}
