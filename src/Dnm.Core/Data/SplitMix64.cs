namespace Dnm.Core.Data;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014; reference: https://prng.di.unimi.it/splitmix64.c).
/// We implement it ourselves because System.Random's algorithm is unspecified and may change between
/// runtimes, and the epoch order must be reproducible across machines, versions and restarts.
/// </summary>
/// <remarks>A mutable struct: pass it by <c>ref</c>, never copy it mid-sequence.</remarks>
public struct SplitMix64
{
    private const ulong Gamma = 0x9E3779B97F4A7C15UL;
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    public ulong NextUInt64()
    {
        _state += Gamma;
        return Mix(_state);
    }

    /// <summary>Uniform integer in [0, bound) without modulo bias (Lemire's multiply-and-reject method).</summary>
    public uint NextBelow(uint bound)
    {
        ArgumentOutOfRangeException.ThrowIfZero(bound);
        ulong product = (ulong)(uint)(NextUInt64() >> 32) * bound;
        uint low = (uint)product;
        if (low < bound)
        {
            // Reject the few values that would make some results more likely than others.
            uint threshold = (uint)-bound % bound;
            while (low < threshold)
            {
                product = (ulong)(uint)(NextUInt64() >> 32) * bound;
                low = (uint)product;
            }
        }
        return (uint)(product >> 32);
    }

    /// <summary>The SplitMix64 output function; also a good 64-bit hash for deriving seeds.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
