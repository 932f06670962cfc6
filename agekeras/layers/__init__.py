"""Public Keras layers of agekeras, one per file.

Heads shared by the papers: `DEXHead`, `CORALHead` (+ `CORALDecode`,
`coral_probabilities`, `coral_label`). Each paper adds its own layers below.
"""

from agekeras.layers.coral_head import CORALDecode, CORALHead, coral_label, coral_prior_bias, coral_probabilities
from agekeras.layers.argmax_age import ArgmaxAge
from agekeras.layers.dex_head import DEXHead

# --- VoVNetv4 (notebook 01) ---
from agekeras.layers.adaptive_stage import AdaptiveStage, adaptive_kernel_and_stride
from agekeras.layers.conv_bn_relu import ConvBNReLU
from agekeras.layers.osa_module import OSAModule
from agekeras.layers.rosa_stage import ROSAStage
from agekeras.layers.orcnn_head import ORCNNHead

# --- AL-ResNets / AL-RoR (notebook 02) ---
from agekeras.layers.attention_lstm_locator import AttentionLSTMLocator
from agekeras.layers.feature_crop import FeatureCrop
from agekeras.layers.global_local_fusion import GlobalLocalFusion
from agekeras.layers.pre_act_basic_block import PreActBasicBlock
from agekeras.layers.ror_group import RoRGroup

# --- DAA (notebook 03) ---
from agekeras.layers.age_decoder import AgeDecoder, age_from_deltas
from agekeras.layers.binary_code_mapping import BinaryCodeMapping, binary_codes
from agekeras.layers.delta_age_adain import DeltaAgeAdaIN, instance_statistics
from agekeras.layers.template_statistics import TemplateStatistics
from agekeras.layers.template_bank import TemplateBank

# --- DHAA (notebook 04) ---
from agekeras.layers.aligned_region_pooling import AlignedRegionPooling
from agekeras.layers.recurrent_fusion import RecurrentFusion

# --- GRA_Net (notebook 05) ---
from agekeras.layers.attention_activation import AttentionActivation
from agekeras.layers.gated_residual_attention import GatedResidualAttention
from agekeras.layers.grouped_age_head import GroupedAgeHead
from agekeras.layers.pre_act_residual_unit import PreActResidualUnit
from agekeras.layers.resnext_unit import ResNeXtUnit
from agekeras.layers.soft_mask_branch import SoftMaskBranch
