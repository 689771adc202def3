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
        var nodes = engine.Model.Som.Nodes;
        var w = Prototypes(engine.Model);
        var z = keepEmbeddings ? new float[(long)count * dim] : [];
        var (bmu, second, dist) = (new int[count], new int[count], new float[count]);
        var labels = new int[count];
        var buffer = new BatchBuffer(data.Shape, Math.Min(batchSize, engine.MaxBatch));
        var batch = new float[buffer.Capacity * dim];
        double squaredError = 0;
        using (no_grad())
        {
            for (int start = 0; start < count; start += buffer.Capacity)
            {
                cancel.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var n = Math.Min(buffer.Capacity, count - start);
                buffer.Fill(data, Enumerable.Range(start, n).ToArray());
                buffer.Labels.AsSpan(0, n).CopyTo(labels.AsSpan(start));
                // Micro-batch by micro-batch, as a step computes: the same bits on every replica and thread count.
                var zb = engine.Embed(buffer.FilledPixels, n, out var batchError);
                squaredError += batchError;
                var rows = batch.AsSpan(0, n * dim);
                zb.cpu().data<float>().CopyTo(rows);
                if (keepEmbeddings) rows.CopyTo(z.AsSpan(start * dim, n * dim));
                // Each sample's best matches depend on its own row only, so batch by batch gives the same answers.
                var (b, s, d) = MapMetrics.BestMatches(rows, n, w, nodes, dim);
                b.CopyTo(bmu, start);
                s.CopyTo(second, start);
                d.CopyTo(dist, start);
            }
        }
        return new Placement(bmu, second, dist, labels, squaredError / ((double)count * data.Shape.Pixels), z);
    }

    /// <summary>Node labels: the majority label of the reference samples whose BMU each node is; null without labels.</summary>
    public static int[]? LabelMap(Placement reference, IImageDataset referenceData, int nodes) =>
        referenceData.HasLabels ? MapMetrics.LabelMap(reference.Bmu, reference.Labels, nodes, referenceData.ClassNames.Count) : null;

    public static MapQuality Quality(Placement eval, int[]? labelMap, bool evalHasLabels, MapGrid grid)
    {
        double? purity = null, nmi = null;
        if (labelMap is not null && evalHasLabels)
        {
            purity = MapMetrics.Purity(eval.Bmu, eval.Labels, labelMap);
            nmi = MapMetrics.Nmi(eval.Bmu, eval.Labels);
        }
        return new MapQuality(purity, nmi, MapMetrics.QuantizationError(eval.Distance),
            MapMetrics.TopographicError(eval.Bmu, eval.Second, grid), eval.ReconstructionMse);
    }

    /// <summary>
    /// The map's pictures in <paramref name="directory"/>: prototypes.png (the decoder applied to every w_j), map-labels.png
    /// (only with a label map), umatrix.png, hitmap.png (how many of the placed samples, <paramref name="bmu"/>, each node
    /// holds) and, for latent sizes up to <see cref="MapRenderer.MaxComponentPlanes"/>, component-planes.png. Returns the
    /// files written.
    /// </summary>
    public static IReadOnlyList<string> RenderPictures(DnmModel model, string directory, int[]? labelMap, IReadOnlyList<string> classNames,
        ReadOnlySpan<int> bmu)
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
        MapRenderer.RenderHitMap(File(MapPictures.HitMap), bmu, som.Grid);
        written.Add(File(MapPictures.HitMap));
        if (som.Dim <= MapRenderer.MaxComponentPlanes)
        {
            MapRenderer.RenderComponentPlanes(File(MapPictures.ComponentPlanes), w, som.Grid, som.Dim);
            written.Add(File(MapPictures.ComponentPlanes));
        }
        return written;
    }

    private static float[] Prototypes(DnmModel model)
    {
        using var w = model.Som.Prototypes.detach().cpu();
        return w.data<float>().ToArray();
    }
}
