namespace Dnm.Core.Som;

/// <summary>σ(n) = max(σ0·exp(−n/α), floor) and η(n) = η0·exp(−n/α).</summary>
public sealed record SomSchedule(double Sigma0, double Eta0, double Alpha, double SigmaFloor)
{
    public double Sigma(double n) => Math.Max(Sigma0 * Math.Exp(-n / Alpha), SigmaFloor);
    public double Eta(double n) => Eta0 * Math.Exp(-n / Alpha);
}

/// <summary>The schedule values one step uses; every replica receives the same ones.</summary>
public readonly record struct ScheduleValues(double Sigma, double Eta);
