output "vnet_id" {
  description = "ID of the VNet."
  value       = azurerm_virtual_network.this.id
}

output "subnet_ids" {
  description = "Subnet IDs by role: aks_nodes, aks_ilb, private_endpoints, functions, postgres."
  value = {
    aks_nodes         = azurerm_subnet.aks_nodes.id
    aks_ilb           = azurerm_subnet.aks_ilb.id
    private_endpoints = azurerm_subnet.private_endpoints.id
    functions         = azurerm_subnet.functions.id
    postgres          = azurerm_subnet.postgres.id
  }
}

output "subnet_cidrs" {
  description = "Subnet address prefixes by role (the Functions one is what the AKS NetworkPolicies allow)."
  value       = local.subnets
}

output "aks_ilb_subnet_name" {
  description = "Name of the subnet the model tiers' internal load balancers take their IPs from."
  value       = azurerm_subnet.aks_ilb.name
}

output "private_dns_zone_ids" {
  description = "Private DNS zone IDs by key: blob, queue, table, key_vault, acr, redis, postgres, monitoring."
  value       = { for k, z in azurerm_private_dns_zone.this : k => z.id }
}
