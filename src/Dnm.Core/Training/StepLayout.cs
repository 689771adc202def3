namespace Dnm.Core.Training;

/// <summary>What a step computes: the autoencoder alone (pre-training) or the full DNM objective.</summary>
public enum StepMode
{
    Autoencoder,
    Joint,
}

/// <summary>
/// Layout of the per-step statistics vector. Every part of it is a sum over samples, so N workers'
/// vectors add up to the single-process vector of the concatenated batch (up to float rounding):
/// <code>[ gradients (P) | BMU z-sums (K·D) | BMU counts (K) | KL sum | squared-error sum | smoothing sum | samples ]</code>
/// followed, in semi-supervised training (<paramref name="Classes"/> &gt; 0), by
/// <code>[ labelled BMU class counts (K·C) | supervised sum | labelled samples ]</code>
/// The gradients are of (Σ_local loss_i)/B with the global B, so their sum is the global gradient.
/// </summary>
public sealed record StepLayout(int Parameters, int Nodes, int Latent, int Classes = 0)
{
    public const int LossParts = 4;
    public int GradientOffset => 0;
    public int BmuSumsOffset => Parameters;
    public int BmuCountsOffset => BmuSumsOffset + Nodes * Latent;
    public int LossOffset => BmuCountsOffset + Nodes;
    public int KlSumIndex => LossOffset;
    public int SquaredErrorSumIndex => LossOffset + 1;
    /// <summary>Σ‖z − ẑ‖² over the samples: the graph-smoothing term before its weight λ (0 while it is off).</summary>
    public int SmoothingSumIndex => LossOffset + 2;
    public int SampleCountIndex => LossOffset + 3;
    /// <summary>Per node and class, the labelled samples whose BMU the node is (<see cref="NodeClasses"/>); only when <see cref="Classes"/> &gt; 0.</summary>
    public int ClassCountsOffset => LossOffset + LossParts;
    /// <summary>Σ −log P(y_i | z_i) over the labelled samples: the supervised term before its weight.</summary>
    public int SupervisedSumIndex => ClassCountsOffset + Nodes * Classes;
    public int LabelledCountIndex => SupervisedSumIndex + 1;
    public int Length => Classes > 0 ? LabelledCountIndex + 1 : LossOffset + LossParts;
}

/// <summary>
/// The loss parts of one global step, as means over its B samples. <paramref name="Smoothing"/> is the mean
/// ‖z − ẑ‖² of the graph-smoothing term before its weight λ, and null while that term is off. <paramref name="Skipped"/>:
/// the step's reduced sums held NaN or infinity and nothing was applied (<see cref="NonFiniteSteps"/>).
/// <paramref name="Supervised"/>: the mean −log P(y | z) over the step's labelled samples (semi-supervised training; null otherwise).
/// </summary>
public readonly record struct StepLoss(double Kl, double Reconstruction, double L2, double Total, int Samples, double? Smoothing = null,
    bool Skipped = false, double? Supervised = null);
