"""python -m services.intake"""

from services.common.runner import run_service
from services.intake.app import create_app

run_service(create_app)
