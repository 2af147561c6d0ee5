// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./Operated.sol";
import "./TokenTransfer.sol";
import "./RewardPoints.sol";

/// @title LeaseEscrow
/// @notice Holds a renter's ERC-20 deposit for one lease until OneNode's operator settles it.
/// One storage slot per lease, O(1) gas per lease.
///
/// Settlement: the operator names the provider's payout wallet, the amount paid to it and
/// the refund to the renter; toProvider + refundToRenter must not exceed the deposit, and
/// whatever remains of the deposit also goes back to the renter (so the renter receives
/// deposit - toProvider). Each lease is settled at most once; a settled lease id can never
/// be deposited into again.
contract LeaseEscrow is Operated {
    using TokenTransfer for IERC20;

    error ZeroAmount();
    error LeaseExists();
    error LeaseNotOpen();
    error NotRenter();
    error AmountTooLarge();
    error SettleExceedsDeposit();
    error NoPoints();

    event Deposited(bytes32 indexed leaseId, address indexed renter, uint256 amount);
    event ToppedUp(bytes32 indexed leaseId, address indexed renter, uint256 amount, uint256 total);
    event Settled(
        bytes32 indexed leaseId,
        address indexed provider,
        address indexed renter,
        uint256 toProvider,
        uint256 toRenter,
        uint256 creditPoints
    );
    event PointsUsed(bytes32 indexed leaseId, address indexed renter, uint256 points);

    uint8 internal constant OPEN = 1;
    uint8 internal constant SETTLED = 2;

    struct Lease {
        address renter; // 160 bits
        uint88 amount; // deposited and not yet paid out (max ~3.09e26 base units)
        uint8 state; // 0 none, 1 open, 2 settled
    }

    IERC20 public immutable token;
    RewardPoints public immutable points; // may be address(0): then creditPoints must be 0

    mapping(bytes32 => Lease) private _leases;

    constructor(IERC20 token_, RewardPoints points_) {
        if (address(token_) == address(0)) revert ZeroAddress();
        token = token_;
        points = points_;
    }

    function leaseOf(bytes32 leaseId) external view returns (address renter, uint256 amount, uint8 state) {
        Lease memory l = _leases[leaseId];
        return (l.renter, l.amount, l.state);
    }

    /// @notice Opens lease `leaseId` with `amount` tokens pulled from the caller (approve first).
    /// @dev No reentrancy guard (saves gas on the hot path): state is written before the
    /// only external call, and a reentering deposit can only open another lease.
    function deposit(bytes32 leaseId, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint88).max) revert AmountTooLarge();
        if (_leases[leaseId].state != 0) revert LeaseExists();
        _leases[leaseId] = Lease(msg.sender, uint88(amount), OPEN);
        token.pull(msg.sender, address(this), amount);
        emit Deposited(leaseId, msg.sender, amount);
    }

    /// @notice Adds `amount` to an open lease; only its renter may.
    function topUp(bytes32 leaseId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Lease storage l = _leases[leaseId];
        if (l.state != OPEN) revert LeaseNotOpen();
        if (l.renter != msg.sender) revert NotRenter();
        uint256 total = uint256(l.amount) + amount;
        if (total > type(uint88).max) revert AmountTooLarge();
        l.amount = uint88(total);
        token.pull(msg.sender, address(this), amount);
        emit ToppedUp(leaseId, msg.sender, amount, total);
    }

    /// @notice Renter burns reward points against an open lease; OneNode applies the
    /// discount in the split it settles with. Requires this escrow to be a points spender.
    function usePoints(bytes32 leaseId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (address(points) == address(0)) revert NoPoints();
        Lease storage l = _leases[leaseId];
        if (l.state != OPEN) revert LeaseNotOpen();
        if (l.renter != msg.sender) revert NotRenter();
        points.spend(msg.sender, amount);
        emit PointsUsed(leaseId, msg.sender, amount);
    }

    /// @notice Pays out lease `leaseId` once: `toProvider` to `provider`, the rest of the
    /// deposit (refundToRenter plus any remainder) to the renter; mints `creditPoints`
    /// reward points to the renter.
    function settle(
        bytes32 leaseId,
        address provider,
        uint256 toProvider,
        uint256 refundToRenter,
        uint256 creditPoints
    ) external onlyOperator {
        // No reentrancy guard: only the operator can enter, and the lease is marked settled
        // before any external call.
        Lease storage l = _leases[leaseId];
        if (l.state != OPEN) revert LeaseNotOpen();
        uint256 deposited = l.amount;
        if (toProvider > deposited || refundToRenter > deposited - toProvider) revert SettleExceedsDeposit();
        if (toProvider != 0 && provider == address(0)) revert ZeroAddress();
        address renter = l.renter;
        l.amount = 0;
        l.state = SETTLED;
        uint256 toRenter;
        unchecked {
            toRenter = deposited - toProvider;
        }
        if (toProvider != 0) token.send(provider, toProvider);
        if (toRenter != 0) token.send(renter, toRenter);
        if (creditPoints != 0) {
            if (address(points) == address(0)) revert NoPoints();
            points.mint(renter, creditPoints);
        }
        emit Settled(leaseId, provider, renter, toProvider, toRenter, creditPoints);
    }
}
