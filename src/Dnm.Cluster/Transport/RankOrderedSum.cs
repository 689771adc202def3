using System.Numerics;

namespace Dnm.Cluster.Transport;

/// <summary>Element-wise float addition; vectorised, but each element still gets its additions in rank order.</summary>
internal static class RankOrderedSum
{
    /// <summary>accumulator[i] += addend[i]. Lane-parallel adds do not reorder any element's sum, so
    /// ((r0 + r1) + r2) + ... is exactly what a scalar loop over ranks computes.</summary>
    public static void AddInPlace(Span<float> accumulator, ReadOnlySpan<float> addend)
    {
        if (accumulator.Length != addend.Length)
            throw new ArgumentException("Vectors of different lengths.", nameof(addend));
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= accumulator.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var sum = new Vector<float>(accumulator[i..]) + new Vector<float>(addend[i..]);
                sum.CopyTo(accumulator[i..]);
            }
        }
        for (; i < accumulator.Length; i++)
            accumulator[i] += addend[i];
    }
}
