using System.Diagnostics;
using Dnm.Core.Config;
using Dnm.Core.Data;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// The smoothed latent targets ẑ of <see cref="DnmConfig.SmoothWeight"/>: the pre-trained embeddings of the
/// training set, averaged <see cref="DnmConfig.SmoothSteps"/> times over each sample's
/// <see cref="DnmConfig.SmoothNeighbours"/> nearest neighbours in that latent space. Made once, at the end of
/// autoencoder pre-training, by whichever process owns the run (the Trainer, or the cluster's replica, which
/// sends them to its workers), from the embeddings its workers made; they travel in checkpoints as <see cref="CheckpointName"/>.
/// </summary>
public sealed class SmoothTargets
{
    public const string CheckpointName = "smooth/targets";

    private SmoothTargets(float[] values, int count, int latent)
    {
        Values = values;
        Count = count;
        Latent = latent;
    }

    /// <summary>N × D floats, row i for training sample i.</summary>
    public float[] Values { get; }
    public int Count { get; }
    public int Latent { get; }

    /// <summary>
    /// Builds the graph of <paramref name="trainEmbeddings"/> (the encoder's embeddings of every training sample, row i for
    /// sample i of <paramref name="train"/>) and averages over it.
    /// </summary>
    public static SmoothTargets Make(DnmConfig config, Tensor trainEmbeddings, IImageDataset train, ITrainingObserver observer, CancellationToken cancel)
    {
        if (trainEmbeddings.shape[0] != train.Count)
            throw new ArgumentException($"smoothed targets need the embeddings of all {train.Count} training samples, not {trainEmbeddings.shape[0]}");
        var sw = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var embeddings = trainEmbeddings.cpu();
        var graph = NeighbourGraph.Build(embeddings, config.SmoothNeighbours, cancel: cancel);
        var smoothed = graph.Diffuse(embeddings, config.SmoothSteps).contiguous();
        // Labels are read only to report how well the graph follows the classes; training never sees them.
        var agreement = train.HasLabels ? $"; {graph.LabelAgreement(train.Label):P1} of neighbour pairs share a label" : "";
        observer.OnMessage($"smoothed targets: {graph.K} nearest neighbours of {graph.Count} samples, {config.SmoothSteps} averaging rounds ({sw.Elapsed.TotalSeconds:F1} s{agreement})");
        return new SmoothTargets(smoothed.data<float>().ToArray(), train.Count, config.Latent);
    }

    /// <summary>Wraps targets received from elsewhere (a checkpoint, the coordinator), checking their size.</summary>
    public static SmoothTargets From(float[] values, int count, int latent, string source)
    {
        if (values.Length != (long)count * latent)
            throw new CheckpointException($"{source} holds smoothed targets for {values.Length / Math.Max(1, latent)} samples of {latent} dimensions, the dataset has {count}");
        return new SmoothTargets(values, count, latent);
    }

    /// <summary>
    /// The targets of <paramref name="checkpoint"/> (named <paramref name="source"/> in errors), or null when it has
    /// none. A checkpoint past SOM pre-training without them cannot continue a run with <paramref name="config"/>'s
    /// smoothing on: they were made before that phase.
    /// </summary>
    public static SmoothTargets? FromCheckpoint(Checkpoint checkpoint, DnmConfig config, int count, string source)
    {
        if (checkpoint.Tensors.FirstOrDefault(t => t.Name == CheckpointName)?.Data is { } data)
            return From(data, count, config.Latent, source);
        if (config.SmoothWeight > 0 && checkpoint.State.Phase is TrainingPhase.Joint or TrainingPhase.Done)
            throw new CheckpointException($"{source} has no smoothed targets, but smooth-weight is on: it was not written by a run with smoothing");
        return null;
    }

    /// <summary>The targets as an N × D tensor on <paramref name="device"/> (SOM pre-training fits the map to them).</summary>
    public Tensor ToTensor(Device device) => tensor(Values, new long[] { Count, Latent }, device: device);

    public NamedArray ToNamedArray() => new(CheckpointName, [Count, Latent], Values);

    /// <summary>Copies the rows of <paramref name="indices"/> into <paramref name="destination"/> and returns the filled part.</summary>
    public ReadOnlySpan<float> Gather(ReadOnlySpan<int> indices, Span<float> destination)
    {
        var d = Latent;
        for (int i = 0; i < indices.Length; i++) Values.AsSpan(indices[i] * d, d).CopyTo(destination.Slice(i * d, d));
        return destination[..(indices.Length * d)];
    }
}
