namespace Dnm.Core.Explore;

/// <summary>
/// Which samples landed on each node, nearest first: compact arrays (one int and one float per sample, plus one offset
/// per node) so a million placed images cost 8 MB, and any page of any node is a slice. Built once from a placement.
/// </summary>
public sealed class NodeMembers
{
    private readonly int[] offsets;
    private readonly int[] members;
    private readonly float[] distances;

    private NodeMembers(int[] offsets, int[] members, float[] distances)
    {
        this.offsets = offsets;
        this.members = members;
        this.distances = distances;
    }

    public int Nodes => offsets.Length - 1;
    public int Samples => members.Length;

    /// <summary>
    /// Groups the samples by BMU and orders each node's samples by distance, then by index (so the order is the same on
    /// every run): a counting sort by node, then one sort of (distance bits, index) keys per node.
    /// </summary>
    public static NodeMembers Build(ReadOnlySpan<int> bmu, ReadOnlySpan<float> distance, int nodes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(nodes);
        if (distance.Length != bmu.Length)
            throw new ArgumentException($"Expected {bmu.Length} distances, got {distance.Length}.", nameof(distance));
        var offsets = new int[nodes + 1];
        for (var i = 0; i < bmu.Length; i++)
        {
            if ((uint)bmu[i] >= (uint)nodes) throw new ArgumentOutOfRangeException(nameof(bmu), $"Node {bmu[i]} of sample {i} is outside 0..{nodes - 1}.");
            offsets[bmu[i] + 1]++;
        }
        for (var n = 0; n < nodes; n++) offsets[n + 1] += offsets[n];

        // A non-negative float's bits order as the float does, so (bits << 32 | index) sorts by distance, then index.
        var keys = new long[bmu.Length];
        var next = offsets[..^1];
        for (var i = 0; i < bmu.Length; i++)
        {
            if (!(distance[i] >= 0)) throw new ArgumentOutOfRangeException(nameof(distance), $"Distance {distance[i]} of sample {i} is not a non-negative number.");
            keys[next[bmu[i]]++] = ((long)BitConverter.SingleToInt32Bits(distance[i]) << 32) | (uint)i;
        }
        var members = new int[bmu.Length];
        var distances = new float[bmu.Length];
        for (var n = 0; n < nodes; n++)
        {
            var segment = keys.AsSpan(offsets[n], offsets[n + 1] - offsets[n]);
            segment.Sort();
            for (var j = 0; j < segment.Length; j++)
            {
                members[offsets[n] + j] = (int)(segment[j] & 0xFFFFFFFF);
                distances[offsets[n] + j] = BitConverter.Int32BitsToSingle((int)(segment[j] >> 32));
            }
        }
        return new NodeMembers(offsets, members, distances);
    }

    /// <summary>How many samples have <paramref name="node"/> as their BMU.</summary>
    public int Count(int node) => offsets[node + 1] - offsets[node];

    /// <summary>The node's samples, nearest first.</summary>
    public ReadOnlySpan<int> Members(int node) => members.AsSpan(offsets[node], Count(node));

    /// <summary>Their distances, in the same order.</summary>
    public ReadOnlySpan<float> Distances(int node) => distances.AsSpan(offsets[node], Count(node));

    /// <summary>Samples per node (the hit map).</summary>
    public int[] Hits()
    {
        var hits = new int[Nodes];
        for (var n = 0; n < hits.Length; n++) hits[n] = Count(n);
        return hits;
    }

    /// <summary>The mean distance of each node's samples to its prototype (its quantization error); NaN for an empty node.</summary>
    public float[] QuantizationErrors()
    {
        var qe = new float[Nodes];
        for (var n = 0; n < qe.Length; n++)
        {
            var d = Distances(n);
            double sum = 0;
            foreach (var v in d) sum += v;
            qe[n] = d.IsEmpty ? float.NaN : (float)(sum / d.Length);
        }
        return qe;
    }
}
