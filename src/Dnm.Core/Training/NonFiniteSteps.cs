using System.Numerics;
using System.Runtime.InteropServices;

namespace Dnm.Core.Training;

/// <summary>
/// Steps whose reduced sums held NaN or infinity. Every replica applies the same reduced vector, so every replica skips
/// the same steps (<see cref="StepUpdater.Apply"/>): nothing of such a step reaches θ, φ, Adam's moments or W, and the
/// replicas stay equal, whatever the world size. The run's owner (the Trainer, the cluster's coordinator) counts them
/// here; <see cref="MaxConsecutive"/> in a row mean the run has diverged, and fail it.
/// </summary>
public sealed class NonFiniteSteps
{
    /// <summary>Skipped steps in a row that fail the run: a stray bad batch passes, a diverged run does not.</summary>
    public const int MaxConsecutive = 5;

    private int consecutive;

    /// <summary>Steps skipped so far.</summary>
    public long Skipped { get; private set; }

    /// <summary>True once <see cref="MaxConsecutive"/> steps in a row were skipped: the last message is the run's failure.</summary>
    public bool Failed => consecutive >= MaxConsecutive;

    /// <summary>
    /// Records global step <paramref name="globalStep"/>'s outcome: null for an applied step, else a warning line (or, when
    /// <see cref="Failed"/>, the failure). <paramref name="culprits"/> names where the values came from, where known.
    /// </summary>
    public string? Record(long globalStep, StepLoss loss, string? culprits = null)
    {
        if (!loss.Skipped)
        {
            consecutive = 0;
            return null;
        }
        consecutive++;
        Skipped++;
        var from = culprits is null ? "" : $" (non-finite contribution from {culprits})";
        return Failed
            ? $"{consecutive} steps in a row, the last step {globalStep}, had NaN or infinity in their reduced gradients or statistics{from}: " +
              "the run diverged. Lower --learning-rate, or look for NaN in the data, and resume from the last checkpoint"
            : $"warning: step {globalStep} skipped: its reduced gradients or statistics hold NaN or infinity{from}; nothing was applied " +
              $"({consecutive} in a row; {MaxConsecutive} fail the run)";
    }

    /// <summary>Whether every value is finite (no NaN, no ±infinity).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values)
    {
        // x·0 is 0 for every finite x and NaN for NaN and ±∞ (IEEE: no compiler may fold it), so a single bad lane
        // survives the sum.
        var acc = Vector<float>.Zero;
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
        foreach (var v in vectors) acc += v * Vector<float>.Zero;
        var sum = Vector.Sum(acc);
        foreach (var x in values[(vectors.Length * Vector<float>.Count)..]) sum += x * 0f;
        return !float.IsNaN(sum);
    }
}

/// <summary>A run stopped because its steps kept producing NaN or infinity (<see cref="NonFiniteSteps"/>).</summary>
public sealed class NonFiniteStepException(string message) : Exception(message);
