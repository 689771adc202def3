using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Dnm.Core.Model;

/// <summary>
/// One SIMD register of floats, the few operations <see cref="DirectConvolution"/>'s kernels use.
/// The kernels are generic over it, so the JIT compiles one specialised copy per width with every
/// call inlined: the same code runs 16-wide with AVX-512 and 8-wide with AVX2.
/// </summary>
internal unsafe interface IFloatVector<TSelf> where TSelf : unmanaged, IFloatVector<TSelf>
{
    static abstract int Lanes { get; }
    static abstract TSelf Load(float* source);
    static abstract TSelf Broadcast(float value);
    /// <summary>a·b + c, fused where the CPU can (one rounding).</summary>
    static abstract TSelf MultiplyAdd(TSelf a, TSelf b, TSelf c);
    void Store(float* destination);
    float Sum();
}

/// <summary>16 floats: native with AVX-512.</summary>
internal readonly unsafe struct Float512 : IFloatVector<Float512>
{
    private readonly Vector512<float> value;
    private Float512(Vector512<float> value) => this.value = value;

    public const int Lanes = 16;
    static int IFloatVector<Float512>.Lanes => Lanes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float512 Load(float* source) => new(Vector512.Load(source));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float512 Broadcast(float value) => new(Vector512.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float512 MultiplyAdd(Float512 a, Float512 b, Float512 c) => new(Vector512.FusedMultiplyAdd(a.value, b.value, c.value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* destination) => value.Store(destination);

    public float Sum() => Vector512.Sum(value);
}

/// <summary>8 floats: native with AVX2 (and the widest there is without AVX-512).</summary>
internal readonly unsafe struct Float256 : IFloatVector<Float256>
{
    private readonly Vector256<float> value;
    private Float256(Vector256<float> value) => this.value = value;

    public const int Lanes = 8;
    static int IFloatVector<Float256>.Lanes => Lanes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float256 Load(float* source) => new(Vector256.Load(source));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float256 Broadcast(float value) => new(Vector256.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Float256 MultiplyAdd(Float256 a, Float256 b, Float256 c) => new(Vector256.FusedMultiplyAdd(a.value, b.value, c.value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store(float* destination) => value.Store(destination);

    public float Sum() => Vector256.Sum(value);
}
