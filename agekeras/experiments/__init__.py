"""What the notebooks drive, one module per paper.

Model builders live in `agekeras.models`; these modules put them to work the
way each paper does: multi-stage training, ablation variants, test-time
augmentation, the paper's tables and figures.

| module | paper | notebook |
|---|---|---|
| `course` | (modes, data and run folders of every notebook) | all |
| `vovnetv4` | Research on Phased Single Aggregation Age Estimation Algorithm Based on VoVNetv4 | 01 |
| `al_resnet` | Fine-Grained Age Estimation in the Wild with Attention LSTM Networks | 02 |
| `daa` | DAA: A Delta Age AdaIN operation for age estimation via binary code transformer | 03 |
| `dhaa` | Deeply-learned Hybrid Representations for Facial Age Estimation | 04 |
| `gra_net` | GRA_Net: A Deep Learning Model for Classification of Age and Gender from Facial Images | 05 |

Import the one you need: `from agekeras.experiments import dhaa`.
"""
