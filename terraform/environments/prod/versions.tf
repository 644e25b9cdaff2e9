terraform {
  required_version = ">= 1.9"

  # Remote state in an Azure Storage container, with Entra auth (no storage keys). The account is
  # made once by hand (docs/deploy.md, step 1); its names come from backend.hcl and -backend-config.
  backend "azurerm" {}

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.30"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

provider "azurerm" {
  # Storage accounts have shared keys disabled: the provider must use Entra ID for them.
  storage_use_azuread = true

  features {
    key_vault {
      purge_soft_delete_on_destroy = false
    }
    resource_group {
      prevent_deletion_if_contains_resources = true
    }
  }
}
