import sys
from pathlib import Path

# tests import helper modules that sit beside them (frontend_cases.py, ...)
sys.path.insert(0, str(Path(__file__).parent))
