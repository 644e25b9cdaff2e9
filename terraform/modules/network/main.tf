# The platform's VNet: AKS nodes, the internal load balancers of the model tiers, private endpoints,
# the Functions integration subnet (delegated for Flex Consumption) and Postgres (delegated).

locals {
  subnets = {
    aks_nodes         = cidrsubnet(var.address_space, 4, 0)  # /20 when the VNet is a /16
    aks_ilb           = cidrsubnet(var.address_space, 8, 16) # internal LBs of GGUF, vLLM, Qdrant
    private_endpoints = cidrsubnet(var.address_space, 8, 17)
    functions         = cidrsubnet(var.address_space, 8, 18)
    postgres          = cidrsubnet(var.address_space, 8, 19)
  }
  private_dns_zones = {
    blob       = "privatelink.blob.core.windows.net"
    queue      = "privatelink.queue.core.windows.net"
    table      = "privatelink.table.core.windows.net"
    key_vault  = "privatelink.vaultcore.azure.net"
    acr        = "privatelink.azurecr.io"
    redis      = "privatelink.redis.cache.windows.net"
    postgres   = "${var.name}.private.postgres.database.azure.com"
    monitoring = "privatelink.monitor.azure.com"
  }
}

resource "azurerm_virtual_network" "this" {
  name                = "vnet-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  address_space       = [var.address_space]
  tags                = var.tags
}

resource "azurerm_subnet" "aks_nodes" {
  name                 = "snet-aks-nodes"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.subnets.aks_nodes]
}

resource "azurerm_subnet" "aks_ilb" {
  name                 = "snet-aks-ilb"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.subnets.aks_ilb]
}

resource "azurerm_subnet" "private_endpoints" {
  name                              = "snet-private-endpoints"
  resource_group_name               = var.resource_group_name
  virtual_network_name              = azurerm_virtual_network.this.name
  address_prefixes                  = [local.subnets.private_endpoints]
  private_endpoint_network_policies = "Enabled"
}

resource "azurerm_subnet" "functions" {
  name                 = "snet-functions"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.subnets.functions]

  # Flex Consumption integrates with a subnet delegated to Microsoft.App/environments.
  delegation {
    name = "flex-consumption"
    service_delegation {
      name    = "Microsoft.App/environments"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_subnet" "postgres" {
  name                 = "snet-postgres"
  resource_group_name  = var.resource_group_name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.subnets.postgres]

  delegation {
    name = "postgres-flexible"
    service_delegation {
      name    = "Microsoft.DBforPostgreSQL/flexibleServers"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

# Every subnet gets an NSG (the AKS-managed rules live on the node NICs' load balancer).
resource "azurerm_network_security_group" "this" {
  for_each            = toset(["aks-nodes", "aks-ilb", "private-endpoints", "functions", "postgres"])
  name                = "nsg-${var.name}-${each.key}"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_subnet_network_security_group_association" "this" {
  for_each = {
    aks-nodes         = azurerm_subnet.aks_nodes.id
    aks-ilb           = azurerm_subnet.aks_ilb.id
    private-endpoints = azurerm_subnet.private_endpoints.id
    functions         = azurerm_subnet.functions.id
    postgres          = azurerm_subnet.postgres.id
  }
  subnet_id                 = each.value
  network_security_group_id = azurerm_network_security_group.this[each.key].id
}

resource "azurerm_private_dns_zone" "this" {
  for_each            = local.private_dns_zones
  name                = each.value
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  for_each              = local.private_dns_zones
  name                  = "link-${each.key}"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.this[each.key].name
  virtual_network_id    = azurerm_virtual_network.this.id
  registration_enabled  = false
  tags                  = var.tags
}
