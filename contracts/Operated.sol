// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Operated
/// @notice Minimal access control shared by the Kaisar contracts: one owner (governance,
/// changes roles) and one operator (OneNode's hot key, sends the day-to-day writes), plus
/// a reentrancy guard.
abstract contract Operated {
    error NotOwner();
    error NotOperator();
    error ZeroAddress();
    error Reentrancy();

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event OperatorChanged(address indexed previousOperator, address indexed newOperator);

    address public owner;
    address public operator;
    uint256 private _lock = 1;

    constructor() {
        owner = msg.sender;
        operator = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
        emit OperatorChanged(address(0), msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator();
        _;
    }

    modifier nonReentrant() {
        if (_lock != 1) revert Reentrancy();
        _lock = 2;
        _;
        _lock = 1;
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function setOperator(address newOperator) external onlyOwner {
        if (newOperator == address(0)) revert ZeroAddress();
        emit OperatorChanged(operator, newOperator);
        operator = newOperator;
    }
}
