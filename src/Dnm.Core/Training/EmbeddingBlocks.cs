using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Dnm.Core.Data;
using static TorchSharp.torch;

namespace Dnm.Core.Training;

/// <summary>
/// The embeddings SOM pre-training needs (of <see cref="SomFitSet.For"/>: every training sample, or a seeded subset of
/// a large set), cut into blocks of <paramref name="BlockSize"/> consecutive samples of that set. One process embeds every
/// block; a cluster hands every N-th block to each worker and the coordinator assembles them (<see cref="EmbeddingGather"/>).
/// A block is embedded micro-batch by micro-batch, so its rows are the same bits whoever computes them.
/// </summary>
public sealed record EmbeddingBlocks(int Samples, int Dim, int BlockSize)
{
    public int Count => Samples == 0 ? 0 : (Samples + BlockSize - 1) / BlockSize;

    /// <summary>Block <paramref name="block"/>'s sample range in the fitted set.</summary>
    public (int Start, int Length) this[int block]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(block);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(block, Count);
            var start = block * BlockSize;
            return (start, Math.Min(BlockSize, Samples - start));
        }
    }

    /// <summary>Bytes of block <paramref name="block"/>'s embeddings on the wire: little-endian floats, a row a sample.</summary>
    public int Bytes(int block) => this[block].Length * Dim * sizeof(float);
}

/// <summary>
/// Assembles a set's embeddings block by block, in any order and from any rank, into one (samples × dim) array; checks
/// that every block arrives once and with its size.
/// </summary>
public sealed class EmbeddingGather
{
    private readonly float[] values;
    private readonly bool[] done;
    private int remaining;

    public EmbeddingGather(EmbeddingBlocks plan)
    {
        Plan = plan;
        values = new float[(long)plan.Samples * plan.Dim];
        done = new bool[plan.Count];
        remaining = plan.Count;
    }

    public EmbeddingBlocks Plan { get; }

    public bool Complete => remaining == 0;

    public bool Done(int block) => done[block];

    public int[] Missing() => Enumerable.Range(0, Plan.Count).Where(b => !done[b]).ToArray();

    /// <summary>Block <paramref name="block"/>'s rows; <see cref="InvalidDataException"/> for a block out of range, of the wrong size or sent twice.</summary>
    public void Add(int block, ReadOnlySpan<float> rows)
    {
        var (start, length) = Check(block, rows.Length * sizeof(float));
        rows.CopyTo(values.AsSpan(start * Plan.Dim, length * Plan.Dim));
        Mark(block);
    }

    /// <summary><see cref="Add(int, ReadOnlySpan{float})"/> from the wire form (<see cref="Encode"/>).</summary>
    public void Add(int block, ReadOnlySpan<byte> encoded)
    {
        var (start, length) = Check(block, encoded.Length);
        var destination = values.AsSpan(start * Plan.Dim, length * Plan.Dim);
        if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(encoded).CopyTo(destination);
        else
            for (int i = 0; i < destination.Length; i++)
                destination[i] = BinaryPrimitives.ReadSingleLittleEndian(encoded.Slice(i * sizeof(float), sizeof(float)));
        Mark(block);
    }

    /// <summary>The assembled (samples × dim) embeddings on <paramref name="device"/>. Caller owns the result.</summary>
    public Tensor ToTensor(Device device)
    {
        if (!Complete) throw new InvalidOperationException($"{remaining} of {Plan.Count} embedding blocks are missing");
        return tensor(values, new long[] { Plan.Samples, Plan.Dim }, device: device);
    }

    /// <summary>Rows as little-endian floats (independent of the host's byte order).</summary>
    public static byte[] Encode(ReadOnlySpan<float> rows)
    {
        var bytes = new byte[rows.Length * sizeof(float)];
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(rows).CopyTo(bytes);
            return bytes;
        }
        for (int i = 0; i < rows.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), rows[i]);
        return bytes;
    }

    private (int Start, int Length) Check(int block, int bytes)
    {
        if (block < 0 || block >= Plan.Count)
            throw new InvalidDataException($"embedding block {block} does not exist (the plan has {Plan.Count})");
        if (bytes != Plan.Bytes(block))
            throw new InvalidDataException($"embedding block {block} holds {bytes} bytes, not the {Plan.Bytes(block)} of {Plan[block].Length} samples × {Plan.Dim}");
        if (done[block]) throw new InvalidDataException($"embedding block {block} arrived twice");
        return Plan[block];
    }

    private void Mark(int block)
    {
        done[block] = true;
        remaining--;
    }
}

/// <summary>Embeds a set's blocks (<see cref="EmbeddingBlocks"/>) without gradient.</summary>
public static class Embeddings
{
    /// <summary>Most bytes of one block's embeddings: a block is one message from a worker, well inside Akka's frame.</summary>
    public const int MaxBlockBytes = 1 << 20;

    /// <summary>
    /// The plan of <paramref name="set"/>'s embeddings for <paramref name="engine"/>: blocks of the batch size (at most the
    /// engine's batch, and <see cref="MaxBlockBytes"/> of embeddings).
    /// </summary>
    public static EmbeddingBlocks Plan(StepEngine engine, IImageDataset set, int batchSize)
    {
        var dim = engine.Som.Dim;
        var rowsPerMessage = Math.Max(1, MaxBlockBytes / (dim * sizeof(float)));
        return new EmbeddingBlocks(set.Count, dim, Math.Max(1, Math.Min(Math.Min(batchSize, engine.MaxLocalBatch), rowsPerMessage)));
    }

    /// <summary>Embeds blocks <paramref name="blocks"/> of <paramref name="plan"/>, handing each block's rows to <paramref name="emit"/> (valid during the call).</summary>
    public static void Blocks(StepEngine engine, IImageDataset set, EmbeddingBlocks plan, IEnumerable<int> blocks, Action<int, ReadOnlySpan<float>> emit,
        CancellationToken cancel)
    {
        if (set.Count != plan.Samples || engine.Som.Dim != plan.Dim)
            throw new InvalidOperationException($"the embedding plan is for {plan.Samples} samples of {plan.Dim} dimensions, this replica fits {set.Count} of {engine.Som.Dim}");
        var buffer = new BatchBuffer(set.Shape, plan.BlockSize);
        var rows = new float[plan.BlockSize * plan.Dim];
        using var _ = no_grad();
        foreach (var block in blocks)
        {
            cancel.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var (start, n) = plan[block];
            buffer.Fill(set, Enumerable.Range(start, n).ToArray());
            var z = engine.Embed(buffer.FilledPixels, n).cpu();
            z.data<float>().CopyTo(rows.AsSpan(0, n * plan.Dim));
            emit(block, rows.AsSpan(0, n * plan.Dim));
        }
    }

    /// <summary>Every block of <paramref name="plan"/>, embedded here: what one process does, and what a cluster's workers do together.</summary>
    public static EmbeddingGather All(StepEngine engine, IImageDataset set, EmbeddingBlocks plan, CancellationToken cancel)
    {
        var gather = new EmbeddingGather(plan);
        Blocks(engine, set, plan, Enumerable.Range(0, plan.Count), (b, rows) => gather.Add(b, rows), cancel);
        return gather;
    }
}
