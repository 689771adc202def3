using System.Runtime.ExceptionServices;

namespace Dnm.Core.Data;

/// <summary><see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/> that rethrows the first failure itself, so a
/// <see cref="DataException"/> from a decode thread still reaches the CLI as one (exit 3), not as an AggregateException.</summary>
internal static class ParallelReads
{
    public static void For(int count, int threads, Action<int> body)
    {
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, body);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            var first = e.InnerExceptions.FirstOrDefault(x => x is DataException) ?? e.InnerExceptions[0];
            ExceptionDispatchInfo.Capture(first).Throw();
        }
    }
}
