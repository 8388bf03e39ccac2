"""python -m services.execution"""

from services.common.runner import run_service
from services.execution.app import create_app

run_service(create_app)
