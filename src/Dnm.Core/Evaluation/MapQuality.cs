using System.Text.Json.Serialization;

namespace Dnm.Core.Evaluation;

/// <summary>
/// The evaluation numbers reported for one trained map on one test set (see dnm-algorithm.md,
/// "Evaluation"). <see cref="Purity"/> and <see cref="Nmi"/> need labels: they are null, and serialize
/// as JSON null, for an unlabelled dataset, so a missing number is never mistaken for a bad one.
/// </summary>
/// <param name="Purity">Fraction of test samples whose BMU's majority label is their own label.</param>
/// <param name="Nmi">Normalized mutual information between BMU index and label (arithmetic-mean normalisation).</param>
/// <param name="Qe">Quantization error: mean ‖z − w_bmu‖ in latent space.</param>
/// <param name="Te">Topographic error: fraction of samples whose two best nodes are not lattice neighbours (4 on rect, 6 on hex, wrapped on a torus).</param>
/// <param name="ReconMse">Mean squared error of the autoencoder's reconstruction, per pixel.</param>
/// <param name="Accuracy">
/// Classification accuracy: the fraction of test samples whose BMU's class (the majority class of the labelled training
/// samples the node holds; a node holding none takes its nearest labelled node's) is their own.
/// </param>
public sealed record MapQuality(
    [property: JsonPropertyName("purity")] double? Purity,
    [property: JsonPropertyName("nmi")] double? Nmi,
    [property: JsonPropertyName("qe")] double Qe,
    [property: JsonPropertyName("te")] double Te,
    [property: JsonPropertyName("recon_mse")] double ReconMse,
    [property: JsonPropertyName("accuracy")] double? Accuracy = null);
