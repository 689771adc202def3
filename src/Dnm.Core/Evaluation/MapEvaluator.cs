using Dnm.Core.Data;
using Dnm.Core.Model;
using Dnm.Core.Som;
using Dnm.Core.Training;
using Dnm.Core.Visual;
using static TorchSharp.torch;

namespace Dnm.Core.Evaluation;

/// <summary>Where each sample of a dataset lands on the map, and its embedding (row-major, one row of the latent size per sample).</summary>
public sealed record Placement(int[] Bmu, int[] Second, float[] Distance, int[] Labels, double ReconstructionMse, float[] Embeddings);

/// <summary>The file names of a map's pictures, the same in a run directory and in `dnm map --out`.</summary>
public static class MapPictures
{
    public const string Prototypes = "prototypes.png";
    public const string LabelMap = "map-labels.png";
    public const string UMatrix = "umatrix.png";
    public const string HitMap = "hitmap.png";
    public const string ComponentPlanes = "component-planes.png";
}

/// <summary>
/// Evaluates a trained map: places samples on the lattice, labels the nodes from a reference set
/// (labels are used here and nowhere in training), and computes purity, NMI, QE, TE and the
/// reconstruction MSE on the evaluation set.
/// </summary>
public static class MapEvaluator
{
    /// <summary>
    /// Embeds, reconstructs and places the first <paramref name="limit"/> samples of <paramref name="data"/>, a batch at a
    /// time: only the placements (12 bytes a sample) are kept, and the embeddings too where
    /// <paramref name="keepEmbeddings"/> asks for them (`dnm map --embeddings`), so evaluating a million samples does not
    /// hold a million embeddings.
    /// </summary>
    public static Placement Place(IEmbedder engine, IImageDataset data, int batchSize, int? limit, CancellationToken cancel, bool keepEmbeddings = false)
    {
        var count = Math.Min(limit ?? data.Count, data.Count);
        var dim = engine.Model.Som.Dim;
        var z = keepEmbeddings ? new float[(long)count * dim] : [];
        var (bmu, second, dist) = (new int[count], new int[count], new float[count]);
        var labels = new int[count];
        double squaredError = 0;
        using var placer = new BlockPlacer(engine, data.Shape, batchSize);
        for (int start = 0; start < count; start += placer.Capacity)
        {
            cancel.ThrowIfCancellationRequested();
            var n = Math.Min(placer.Capacity, count - start);
            var block = placer.Place(data, start, n);
            block.Labels.CopyTo(labels.AsSpan(start));
            squaredError += block.SquaredError;
            if (keepEmbeddings) block.Embeddings.CopyTo(z.AsSpan(start * dim, n * dim));
            block.Bmu.CopyTo(bmu.AsSpan(start));
            block.Second.CopyTo(second.AsSpan(start));
            block.Distance.CopyTo(dist.AsSpan(start));
        }
        return new Placement(bmu, second, dist, labels, squaredError / ((double)count * data.Shape.Pixels), z);
    }

    /// <summary>
    /// The blocks of an evaluation that <paramref name="blocks"/> lists for this rank (all of them in one process), tallied:
    /// the reference blocks' samples of <paramref name="reference"/> (node labels, hit map) and the evaluated blocks' of
    /// <paramref name="evaluated"/>. Each block embeds as one batch of the run, so its numbers are the same bits on every
    /// rank, and merging every rank's tally gives one process's exactly.
    /// </summary>
    /// <remarks>
    /// <paramref name="isLabelled"/> says which reference samples (by index) the accuracy's classifier may learn from: a
    /// semi-supervised run's labelled samples; null: all of them.
    /// </remarks>
    public static EvaluationTally Tally(IEmbedder engine, IImageDataset reference, IImageDataset evaluated, EvaluationBlocks plan,
        IEnumerable<int> blocks, CancellationToken cancel, Func<int, bool>? isLabelled = null)
    {
        var som = engine.Model.Som;
        var tally = new EvaluationTally(plan, som.Nodes, Math.Max(reference.ClassNames.Count, evaluated.ClassNames.Count));
        using var placer = new BlockPlacer(engine, evaluated.Shape, plan.BlockSize);
        if (placer.Capacity != plan.BlockSize)
            throw new ArgumentException($"evaluation blocks of {plan.BlockSize} samples exceed the engine's largest batch {engine.MaxBatch}");
        foreach (var b in blocks)
        {
            cancel.ThrowIfCancellationRequested();
            var (isReference, start, n) = plan[b];
            var placed = placer.Place(isReference ? reference : evaluated, start, n);
            if (isReference) tally.AddReference(b, placed.Bmu, placed.Labels, isLabelled);
            else tally.AddEvaluated(b, placed.Bmu, placed.Second, placed.Distance, placed.Labels, placed.SquaredError,
                som.Grid.Adjacent);
        }
        return tally;
    }

    /// <summary>Every block of an evaluation in one process: the first <paramref name="limit"/> samples of each set (all by default).</summary>
    public static EvaluationTally Tally(IEmbedder engine, IImageDataset reference, IImageDataset evaluated, int batchSize, int? limit,
        CancellationToken cancel, Func<int, bool>? isLabelled = null)
    {
        var plan = Plan(engine, reference, evaluated, batchSize, limit);
        return Tally(engine, reference, evaluated, plan, Enumerable.Range(0, plan.Count), cancel, isLabelled);
    }

    /// <summary>How an evaluation of the first <paramref name="limit"/> samples of each set is cut into blocks.</summary>
    public static EvaluationBlocks Plan(IEmbedder engine, IImageDataset reference, IImageDataset evaluated, int batchSize, int? limit) =>
        new(Math.Min(limit ?? reference.Count, reference.Count), Math.Min(limit ?? evaluated.Count, evaluated.Count),
            Math.Max(1, Math.Min(batchSize, engine.MaxBatch)));

    /// <summary>One batch's placements; its arrays are the placer's and valid until its next call.</summary>
    private readonly ref struct PlacedBlock(ReadOnlySpan<int> bmu, ReadOnlySpan<int> second, ReadOnlySpan<float> distance,
        ReadOnlySpan<int> labels, ReadOnlySpan<float> embeddings, double squaredError)
    {
        public ReadOnlySpan<int> Bmu { get; } = bmu;
        public ReadOnlySpan<int> Second { get; } = second;
        public ReadOnlySpan<float> Distance { get; } = distance;
        public ReadOnlySpan<int> Labels { get; } = labels;
        public ReadOnlySpan<float> Embeddings { get; } = embeddings;
        public double SquaredError { get; } = squaredError;
    }

    /// <summary>Embeds, reconstructs and places one batch at a time, reusing its buffers.</summary>
    private sealed class BlockPlacer : IDisposable
    {
        private readonly IEmbedder engine;
        private readonly BatchBuffer buffer;
        private readonly float[] w, z;
        private readonly int dim, nodes;
        private readonly IDisposable noGrad;

        public BlockPlacer(IEmbedder engine, ImageShape shape, int batchSize)
        {
            this.engine = engine;
            dim = engine.Model.Som.Dim;
            nodes = engine.Model.Som.Nodes;
            w = Prototypes(engine.Model);
            buffer = new BatchBuffer(shape, Math.Max(1, Math.Min(batchSize, engine.MaxBatch)));
            z = new float[buffer.Capacity * dim];
            noGrad = no_grad();
        }

        public int Capacity => buffer.Capacity;

        public PlacedBlock Place(IImageDataset data, int start, int n)
        {
            using var scope = NewDisposeScope();
            buffer.Fill(data, Enumerable.Range(start, n).ToArray());
            // Micro-batch by micro-batch, as a step computes: the same bits on every replica and thread count.
            var zb = engine.Embed(buffer.FilledPixels, n, out var squaredError);
            var rows = z.AsSpan(0, n * dim);
            zb.cpu().data<float>().CopyTo(rows);
            // Each sample's best matches depend on its own row only, so batch by batch gives the same answers.
            var (b, s, d) = MapMetrics.BestMatches(rows, n, w, nodes, dim);
            return new PlacedBlock(b, s, d, buffer.Labels.AsSpan(0, n), rows, squaredError);
        }

        public void Dispose() => noGrad.Dispose();
    }

    /// <summary>Node labels: the majority label of the reference samples whose BMU each node is; null without labels.</summary>
    public static int[]? LabelMap(Placement reference, IImageDataset referenceData, int nodes) =>
        referenceData.HasLabels ? MapMetrics.LabelMap(reference.Bmu, reference.Labels, nodes, referenceData.ClassNames.Count) : null;

    /// <summary>
    /// The map's pictures in <paramref name="directory"/>: prototypes.png (the decoder applied to every w_j), map-labels.png
    /// (only with a label map), umatrix.png, hitmap.png (<paramref name="hits"/>: how many samples each node
    /// is the BMU of) and, for latent sizes up to <see cref="MapRenderer.MaxComponentPlanes"/>, component-planes.png. Returns the
    /// files written.
    /// </summary>
    public static IReadOnlyList<string> RenderPictures(DnmModel model, string directory, int[]? labelMap, IReadOnlyList<string> classNames,
        long[] hits)
    {
        var som = model.Som;
        var shape = model.Shape;
        var images = new float[(long)som.Nodes * shape.Pixels];
        using (no_grad())
        using (NewDisposeScope())
        {
            model.Autoencoder.Decode(som.Prototypes).cpu().data<float>().CopyTo(images);
        }
        Directory.CreateDirectory(directory);
        string File(string name) => Path.Combine(directory, name);
        var written = new List<string>();
        MapRenderer.RenderPrototypes(File(MapPictures.Prototypes), images, som.Grid, shape);
        written.Add(File(MapPictures.Prototypes));
        if (labelMap is not null)
        {
            MapRenderer.RenderLabelMap(File(MapPictures.LabelMap), labelMap, som.Grid, classNames);
            written.Add(File(MapPictures.LabelMap));
        }
        var w = Prototypes(model);
        MapRenderer.RenderUMatrix(File(MapPictures.UMatrix), w, som.Grid, som.Dim);
        written.Add(File(MapPictures.UMatrix));
        MapRenderer.RenderHitMap(File(MapPictures.HitMap), hits, som.Grid);
        written.Add(File(MapPictures.HitMap));
        if (som.Dim <= MapRenderer.MaxComponentPlanes)
        {
            MapRenderer.RenderComponentPlanes(File(MapPictures.ComponentPlanes), w, som.Grid, som.Dim);
            written.Add(File(MapPictures.ComponentPlanes));
        }
        return written;
    }

    /// <summary>The prototypes W, row-major (nodes × latent), on the host.</summary>
    public static float[] Prototypes(DnmModel model)
    {
        using var w = model.Som.Prototypes.detach().cpu();
        return w.data<float>().ToArray();
    }
}
