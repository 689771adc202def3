using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Explore;

/// <summary>A lattice node and the latent distance of an image's embedding to its prototype.</summary>
public readonly record struct NodeDistance(int Node, float Distance);

/// <summary>Where one image lands: its BMU and distance, the <c>k</c> nearest nodes (BMU first), and its embedding when asked.</summary>
public sealed record ImagePlacement(int Bmu, float Distance, NodeDistance[] Nearest, float[]? Latent);

/// <summary>
/// Places images on a trained map for a server: inference only, safe to call from many threads at once. A TorchSharp
/// module must not run two forwards at once, so the placer holds a small pool of model replicas (each a
/// <see cref="TrainedMap"/> of the same checkpoint) and lends each call one of them; a call that finds none free waits.
/// Torch runs one thread per forward here (TorchRuntime sets it), so replicas up to the core count add throughput.
/// </summary>
public sealed class MapPlacer : IDisposable
{
    private readonly TrainedMap[] replicas;
    private readonly Stack<TrainedMap> free;
    private readonly SemaphoreSlim available;
    private readonly Lock gate = new();

    private MapPlacer(TrainedMap[] replicas)
    {
        this.replicas = replicas;
        free = new Stack<TrainedMap>(replicas);
        available = new SemaphoreSlim(replicas.Length, replicas.Length);
        var first = replicas[0];
        using (no_grad())
        using (var w = first.Model.Som.Prototypes.detach().cpu())
            Prototypes = w.data<float>().ToArray();
    }

    /// <summary>Builds <paramref name="replicas"/> models of <paramref name="checkpoint"/> on <paramref name="device"/>.</summary>
    public static MapPlacer Create(Checkpoint checkpoint, string source, Device device, int replicas)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(replicas, 1);
        var built = new List<TrainedMap>();
        try
        {
            for (var i = 0; i < replicas; i++) built.Add(TrainedMap.From(checkpoint, source, device));
            return new MapPlacer([.. built]);
        }
        catch
        {
            foreach (var map in built) map.Dispose();
            throw;
        }
    }

    /// <summary>The first replica, for work that needs the model itself (placing a whole dataset at start-up).</summary>
    public TrainedMap Map => replicas[0];
    public int Replicas => replicas.Length;
    public ImageShape Shape => Map.Shape;
    public MapGrid Grid => Map.Model.Som.Grid;
    public int Rows => Map.Model.Som.Rows;
    public int Cols => Map.Model.Som.Cols;
    public int Nodes => Map.Model.Som.Nodes;
    public int Dim => Map.Model.Som.Dim;

    /// <summary>The prototypes W on the host, nodes × dim, row-major.</summary>
    public float[] Prototypes { get; }

    /// <summary>
    /// Embeds <paramref name="count"/> images (C×H×W floats in [0,1], one after the other) and places each: BMU, distance,
    /// the <paramref name="k"/> nearest nodes, and its latent vector when <paramref name="latent"/>. The BMU and its
    /// distance are computed as `dnm map` computes them (<see cref="MapMetrics.BestMatches"/>: the same distance code,
    /// ties to the smaller node).
    /// </summary>
    public ImagePlacement[] Place(ReadOnlySpan<float> images, int count, int k, bool latent)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        if (images.Length != count * Shape.Pixels)
            throw new ArgumentException($"Expected {count} images of {Shape} = {count * Shape.Pixels} floats, got {images.Length}.", nameof(images));
        var z = Embed(images, count);
        var dim = Dim;
        k = Math.Min(k, Nodes);
        var result = new ImagePlacement[count];
        for (var i = 0; i < count; i++)
        {
            var row = z.AsSpan(i * dim, dim);
            var nearest = Nearest(row, k);
            result[i] = new ImagePlacement(nearest[0].Node, nearest[0].Distance, nearest, latent ? row.ToArray() : null);
        }
        return result;
    }

    /// <summary>Places a whole dataset as `dnm map` does (its micro-batches, its bits), on a replica lent for the while.</summary>
    public Placement PlaceDataset(IImageDataset data, CancellationToken cancel)
    {
        var map = Rent();
        try
        {
            return map.Place(data, cancel);
        }
        finally
        {
            Return(map);
        }
    }

    /// <summary>The decoder's image of every prototype, nodes × C×H×W floats.</summary>
    public float[] DecodePrototypes()
    {
        var map = Rent();
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            return map.Model.Autoencoder.Decode(map.Model.Som.Prototypes).cpu().data<float>().ToArray();
        }
        finally
        {
            Return(map);
        }
    }

    private float[] Embed(ReadOnlySpan<float> images, int count)
    {
        var map = Rent();
        try
        {
            var model = map.Model;
            var z = new float[count * Dim];
            using var _ = no_grad();
            // The run's micro-batches, as `dnm map` embeds: a batch the size of one of its batches gives the same bits.
            for (var b = 0; b < model.MicroBatches.Count(count); b++)
            {
                var (start, n) = model.MicroBatches.Range(count, b);
                if (n == 0) continue;
                using var scope = NewDisposeScope();
                var x = tensor(images.Slice(start * Shape.Pixels, n * Shape.Pixels).ToArray(),
                    [n, Shape.Channels, Shape.Height, Shape.Width], device: model.Device);
                var target = empty([n, Dim], device: model.Device);
                model.EmbedMicroBatch(x, target, reconstruct: false);
                target.cpu().data<float>().CopyTo(z.AsSpan(start * Dim, n * Dim));
            }
            return z;
        }
        finally
        {
            Return(map);
        }
    }

    /// <summary>The k nodes nearest <paramref name="z"/>, nearest first, ties to the smaller node (as BestMatches).</summary>
    private NodeDistance[] Nearest(ReadOnlySpan<float> z, int k)
    {
        var dim = Dim;
        var best = new float[k];
        var nodes = new int[k];
        Array.Fill(best, float.PositiveInfinity);
        var filled = 0;
        for (var node = 0; node < Nodes; node++)
        {
            var d = MapMetrics.SquaredDistance(z, Prototypes.AsSpan(node * dim, dim));
            // A NaN distance (a broken prototype) ranks nowhere, as in BestMatches, which refuses it outright.
            if (float.IsNaN(d) || (filled == k && !(d < best[k - 1]))) continue;
            // Insertion into the sorted top k: strictly smaller moves ahead, so an equal distance stays behind the smaller node.
            var at = Math.Min(filled, k - 1);
            while (at > 0 && d < best[at - 1])
            {
                best[at] = best[at - 1];
                nodes[at] = nodes[at - 1];
                at--;
            }
            best[at] = d;
            nodes[at] = node;
            if (filled < k) filled++;
        }
        if (filled == 0) throw new InvalidOperationException("every distance to the prototypes is NaN: the checkpoint's prototypes are broken");
        var result = new NodeDistance[filled];
        for (var i = 0; i < filled; i++) result[i] = new NodeDistance(nodes[i], MathF.Sqrt(best[i]));
        return result;
    }

    private TrainedMap Rent()
    {
        available.Wait();
        lock (gate) return free.Pop();
    }

    private void Return(TrainedMap map)
    {
        lock (gate) free.Push(map);
        available.Release();
    }

    public void Dispose()
    {
        foreach (var map in replicas) map.Dispose();
        available.Dispose();
    }
}
