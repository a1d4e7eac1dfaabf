"""llmbus configuration: the YAML config file and typed service settings."""

from llmbus.config.errors import ConfigError, ConfigProblem
from llmbus.config.loader import load_config, parse_config
from llmbus.config.model import (
    BUILTIN_PROVIDERS,
    CUSTOM_TYPE,
    ClientKey,
    Config,
    CooldownConfig,
    CredentialEntry,
    FeaturesConfig,
    HealthCheckConfig,
    LimitsConfig,
    ModelEntry,
    ProviderConfig,
    RemoteManagementConfig,
    ResponsesConfig,
    RoutingConfig,
    Strategy,
    UsageConfig,
)
from llmbus.config.settings import ServiceSettings, SettingsError
from llmbus.config.watch import ConfigWatcher

__all__ = [
    "BUILTIN_PROVIDERS",
    "CUSTOM_TYPE",
    "ClientKey",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ConfigWatcher",
    "CooldownConfig",
    "CredentialEntry",
    "FeaturesConfig",
    "HealthCheckConfig",
    "LimitsConfig",
    "ModelEntry",
    "ProviderConfig",
    "RemoteManagementConfig",
    "ResponsesConfig",
    "RoutingConfig",
    "ServiceSettings",
    "SettingsError",
    "Strategy",
    "UsageConfig",
    "load_config",
    "parse_config",
]
