"""Public Keras layers of agekeras, one per file.

Heads shared by the papers: `DEXHead`, `CORALHead` (+ `CORALDecode`,
`coral_probabilities`, `coral_label`). Each paper adds its own layers below.
"""

from agekeras.layers.coral_head import CORALDecode, CORALHead, coral_label, coral_probabilities
from agekeras.layers.dex_head import DEXHead

# --- VoVNetv4 (notebook 01) ---

# --- AL-ResNets / AL-RoR (notebook 02) ---

# --- DAA (notebook 03) ---

# --- DHAA (notebook 04) ---

# --- GRA_Net (notebook 05) ---
