"""Names of the tensors that cross modules, with their shapes (written once).

B: batch of configurations; N: microscopic coordinates; k: sampled coordinates per
configuration; d: macroscopic dimension (given observables first, then closure).
"""

X = "x"                  # configurations (B, N), float
WHERE = "where"          # (trajectory, snapshot) of a labelled configuration in the train table (B, 2), int64
INDEX = "idx"            # sampled coordinate indices (B, k), int64, in [0, N)
FORCES = "f"             # forces at INDEX (B, k); full forces (B, N) for L_z labels
WEIGHTS = "w"            # importance weights at INDEX (B, k); 1 for uniform subsets
Z = "z"                  # encoded macroscopic state φ(x) (B, d)
PINV_ROWS = "P"          # rows INDEX of J⁺ = Jᵀ(JJᵀ)⁻¹ (B, k, d)
QR_R = "R"               # R of W^½ P = Q R (B, m, d), m = min(k, d): compact L_x,p (PartialForceLoss.compact)
QR_T = "t"               # Qᵀ W^½ f (B, m)
QR_REST = "c0"           # ‖W^½ f‖² − ‖t‖² (B,): the part of the loss no field can remove
QR_K = "k"               # k of the row (B,), to keep the loss a mean over the k coordinates
JF = "Jf"                # macroscopic velocity J f (B, d); needs all forces
JF_ESTIMATE = "Jf_est"   # unbiased estimate (N/k) J_I f_I (B, d), for standardisation
TRAJ = "traj"            # saved trajectory states (B, T, N)
