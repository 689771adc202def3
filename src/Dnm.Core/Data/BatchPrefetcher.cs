using System.Diagnostics;

namespace Dnm.Core.Data;

/// <summary>
/// Keeps the next step's batch being read, decoded and augmented on the thread pool while the current step computes:
/// a bounded queue of one batch ahead, so memory stays at two batch buffers whatever the dataset's size. The batch a
/// step gets is the same whether it was prefetched or filled on demand (a wrong guess, e.g. after the world changed, is
/// dropped and the batch filled then), so prefetching never changes what is trained.
/// </summary>
public sealed class BatchPrefetcher : IDisposable
{
    private readonly IImageDataset data;
    private readonly ImageAugmenter augmenter;
    private BatchBuffer current, spare;
    private (int Epoch, int[] Indices)? pendingKey;
    private Task? pending;

    public BatchPrefetcher(IImageDataset data, ImageAugmenter augmenter, int capacity)
    {
        this.data = data;
        this.augmenter = augmenter;
        current = new BatchBuffer(data.Shape, capacity);
        spare = new BatchBuffer(data.Shape, capacity);
    }

    /// <summary>Batches that had to be filled on demand because none (or another) was prefetched.</summary>
    public long Misses { get; private set; }

    /// <summary>
    /// The filled and augmented batch of <paramref name="indices"/> in data epoch <paramref name="epoch"/>, and how long the
    /// caller waited for it (the step's data wait: zero when the prefetch was done in time).
    /// </summary>
    public BatchBuffer Take(int epoch, ReadOnlySpan<int> indices, out TimeSpan waited)
    {
        var clock = Stopwatch.StartNew();
        bool hit = pendingKey is { } key && key.Epoch == epoch && indices.SequenceEqual(key.Indices);
        var task = pending;
        pending = null;
        pendingKey = null;
        if (task is not null)
        {
            try
            {
                task.GetAwaiter().GetResult();
            }
            catch when (!hit)
            {
                // A guess nobody asked for failed: the batch below is filled (and fails) on its own terms.
            }
        }
        if (hit)
        {
            (current, spare) = (spare, current);
        }
        else
        {
            Misses++;
            var ids = indices.ToArray();
            current.Fill(data, ids);
            augmenter.Apply(current.FilledPixels, ids, epoch);
        }
        waited = clock.Elapsed;
        return current;
    }

    /// <summary>Starts filling the batch a later <see cref="Take"/> is expected to ask for.</summary>
    public void Prefetch(int epoch, int[] indices)
    {
        if (pending is not null) return;
        var target = spare;
        pendingKey = (epoch, indices);
        pending = Task.Run(() =>
        {
            target.Fill(data, indices);
            augmenter.Apply(target.FilledPixels, indices, epoch);
        });
    }

    /// <summary>Waits for a prefetch still running (it writes into a buffer this object owns).</summary>
    public void Dispose()
    {
        try
        {
            pending?.Wait();
        }
        catch (AggregateException)
        {
            // Nobody will use that batch.
        }
        pending = null;
    }
}
