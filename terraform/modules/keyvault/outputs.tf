output "id" {
  description = "ID of the vault."
  value       = azurerm_key_vault.this.id
}

output "name" {
  description = "Name of the vault (the AKS SecretProviderClasses read it)."
  value       = azurerm_key_vault.this.name
}

output "vault_uri" {
  description = "https://NAME.vault.azure.net/"
  value       = azurerm_key_vault.this.vault_uri
}

output "secret_versionless_ids" {
  description = "Versionless IDs of the secrets by name (Key Vault references follow the latest version)."
  value       = { for k, s in azurerm_key_vault_secret.this : k => s.versionless_id }
}

output "secret_resource_ids" {
  description = "Resource Manager IDs of the secrets by name (per-secret role assignment scopes)."
  value       = { for k, s in azurerm_key_vault_secret.this : k => s.resource_versionless_id }
}
