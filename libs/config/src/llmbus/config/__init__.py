"""llmbus configuration: the YAML config file and typed service settings."""

from llmbus.config.errors import ConfigError, ConfigProblem
from llmbus.config.loader import load_config, parse_config
from llmbus.config.model import ClientKey, Config, CredentialEntry, ModelEntry, ProviderConfig
from llmbus.config.settings import ServiceSettings, SettingsError

__all__ = [
    "ClientKey",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "CredentialEntry",
    "ModelEntry",
    "ProviderConfig",
    "ServiceSettings",
    "SettingsError",
    "load_config",
    "parse_config",
]
