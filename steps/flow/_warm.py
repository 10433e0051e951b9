"""Imported once by the workers' forkserver, before it forks any worker: what every worker
needs anyway, so that no worker pays for it (`import mlflow` alone is about 2 s here)."""

import mlflow
import mlflow.models
import mlflow.pyfunc
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (~1 s the first time a process opens sqlite)
import numpy  # noqa: F401
import pandas  # noqa: F401
from sqlalchemy.orm import configure_mappers

from steps.flow import workers  # noqa: F401

configure_mappers()  # MLflow's table mappings, configured on first use otherwise (~0.3 s)
